//! The decoder's incremental step on the CPU, written out by hand: the weights of the decoder copied
//! once into host memory, every product a call of the `gemm` crate (the kernels burn-flex itself
//! calls), attention over a [`HostCache`], layer norms and residuals as loops over `[rows, d]`
//! buffers. It computes what [`Transformer::decode_step`] computes, without a tensor operation per
//! step: on burn-flex each operation allocates and zero-fills its output and copies it once more, and
//! at a decoding step's sizes (`rows × d` = 128 × 256) that overhead is as large as the arithmetic.
//! The self-attention's query, key and value projections are one product (their weights side by
//! side, `[d, 3d]`), as are the cross-attention's keys and values.
//!
//! The encoder still runs as the tensor model ([`Transformer::encode`]), once per batch.

use crate::decode::host_cache::HostCache;
use crate::ops::host_ops::View;
use crate::ops::precision::amx;
use crate::positions::position_values;
use crate::tensors::{f32_vec, on_cpu};
use crate::transformer::{DecoderLayer, Transformer};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::Device;
use burn::tensor::{Int, Tensor};
use seqls_amx::{Amx, PackedB};
use std::sync::Arc;

/// `LayerNormConfig`'s default epsilon, with which every layer norm of the model is built.
const LAYER_NORM_EPSILON: f32 = crate::ops::layer_norm::EPSILON as f32;

/// The decoder of a [`Transformer`] in host memory, for [`HostDecoder::step`].
#[derive(Clone, Debug)]
pub struct HostDecoder {
    d: usize,
    heads: usize,
    pre_norm: bool,
    /// Target embedding, `[V, d]`.
    embedding: Vec<f32>,
    layers: Vec<HostLayer>,
    final_norm: Option<HostNorm>,
    /// The output projection `[d, V]` (with tied embeddings, the embedding transposed: read in this
    /// orientation the product ran ~15% faster than on the `[V, d]` embedding).
    output: Tiled,
}

#[derive(Clone, Debug)]
struct HostLayer {
    /// Self-attention: query, key and value projections side by side, `d → 3d`.
    self_qkv: HostLinear,
    self_out: HostLinear,
    cross_query: HostLinear,
    /// Cross-attention: key and value projections side by side, `d → 2d`.
    cross_kv: HostLinear,
    cross_out: HostLinear,
    ff_inner: HostLinear,
    ff_outer: HostLinear,
    /// Before (pre-norm) or after (post-norm) the self-attention, cross-attention, feed-forward.
    norms: [HostNorm; 3],
}

/// `y = x·W + b` with `W` `[d_in, d_out]`.
#[derive(Clone, Debug)]
struct HostLinear {
    weight: Tiled,
    bias: Option<Vec<f32>>,
}

#[derive(Clone, Debug)]
struct HostNorm {
    gamma: Vec<f32>,
    beta: Option<Vec<f32>>,
}

impl HostLinear {
    fn new(linear: &Linear) -> Self {
        let [d_in, d_out] = linear.weight.dims();
        HostLinear {
            weight: Tiled::new(&f32_vec(linear.weight.val()), d_in, d_out),
            bias: linear.bias.as_ref().map(|b| f32_vec(b.val())),
        }
    }

    /// The linear maps `parts` (same input width) as one, their outputs concatenated.
    fn side_by_side(parts: &[&Linear]) -> Self {
        let weights: Vec<Vec<f32>> = parts.iter().map(|l| f32_vec(l.weight.val())).collect();
        let widths: Vec<usize> = parts.iter().map(|l| l.weight.dims()[1]).collect();
        let d_out: usize = widths.iter().sum();
        let d_in = parts[0].weight.dims()[0];
        let mut weight = Vec::with_capacity(d_in * d_out);
        for i in 0..d_in {
            for (w, &width) in weights.iter().zip(&widths) {
                weight.extend_from_slice(&w[i * width..(i + 1) * width]);
            }
        }
        // A part without a bias adds zeros.
        let bias = parts.iter().any(|l| l.bias.is_some()).then(|| {
            parts
                .iter()
                .zip(&widths)
                .flat_map(|(l, &width)| {
                    l.bias
                        .as_ref()
                        .map_or_else(|| vec![0.0; width], |b| f32_vec(b.val()))
                })
                .collect()
        });
        HostLinear {
            weight: Tiled::new(&weight, d_in, d_out),
            bias,
        }
    }

    /// `x` `[rows, d_in]` → `[rows, d_out]`.
    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut y = product(x, &self.weight);
        if let Some(b) = &self.bias {
            for row in y.chunks_exact_mut(self.weight.n) {
                for (y, b) in row.iter_mut().zip(b) {
                    *y += b;
                }
            }
        }
        y
    }
}

/// Columns per tile of a [`Tiled`] matrix.
const TILE: usize = 64;

/// A `[k, n]` matrix stored as tiles of `TILE` columns (the last narrower), each a row-major
/// `[k, width]` block of its own, so that a product reads each tile front to back instead of `k`
/// short pieces of rows far apart (the output layer is `[256, 8000]`, 8 MB). Measured on decoding S:
/// tiles of 64 columns +3–5% (six alternating runs), of 256 no change.
///
/// When the products run in bf16 ([`crate::use_precision`]) the matrix is also packed once for the
/// AMX tiles, and the products use that copy.
#[derive(Clone)]
struct Tiled {
    k: usize,
    n: usize,
    /// The tiles one after the other; tile `t` starts at `k · t · TILE`.
    values: Vec<f32>,
    /// The matrix as bf16 tiles, when the products run on them.
    packed: Option<(Amx, Arc<PackedB>)>,
}

impl std::fmt::Debug for Tiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiled")
            .field("k", &self.k)
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

impl Tiled {
    /// From `w` `[k, n]` row-major.
    fn new(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n);
        let mut values = Vec::with_capacity(k * n);
        for start in (0..n).step_by(TILE) {
            let width = TILE.min(n - start);
            for row in w.chunks_exact(n) {
                values.extend_from_slice(&row[start..start + width]);
            }
        }
        // SAFETY: `w` is `[k, n]` row-major (asserted above).
        let packed = amx().map(|amx| {
            (
                amx,
                Arc::new(unsafe { PackedB::pack(View::rows(w, n), k, n, true) }),
            )
        });
        Tiled {
            k,
            n,
            values,
            packed,
        }
    }
}

/// `x·w` for `x` `[rows, k]`, as `[rows, n]` row-major: one product per tile of `w`.
fn product(x: &[f32], w: &Tiled) -> Vec<f32> {
    let mut out = Vec::new();
    product_into(x, w, &mut out);
    out
}

/// [`product`] into `out` (replacing what it held; its allocation is kept when large enough).
fn product_into(x: &[f32], w: &Tiled, out: &mut Vec<f32>) {
    let (k, n) = (w.k, w.n);
    let m = x.len() / k;
    assert!(x.len() == m * k && w.values.len() == k * n);
    // Written by the products without being read (`read_dst` false): no zero-filling first.
    out.clear();
    out.reserve(m * n);
    if let Some((amx, packed)) = &w.packed {
        // SAFETY: `x` is `[m, k]`, `packed` `[k, n]`, `out` has room for `[m, n]`, all written.
        unsafe {
            amx.packed_product_into(
                m,
                (out.as_mut_ptr(), n),
                seqls_amx::Initial::Zero,
                View::rows(x, k),
                packed,
                true,
            );
            out.set_len(m * n);
        }
        return;
    }
    for start in (0..n).step_by(TILE) {
        let width = TILE.min(n - start);
        let tile = &w.values[k * start..k * (start + width)];
        // Every product runs on the thread pool: when the other threads are busy with batches of
        // their own it runs on this one, else they help. Even alone on its thread, the crate's
        // parallel path (split into column blocks, the weights read in place) was measured ~4%
        // faster at decoding sizes than its serial path (which first copies them into panels).
        // SAFETY: `out` has room for `[m, n]`; this writes its columns `start..start + width`
        // (row stride `n`) from `x` `[m, k]` and `tile` `[k, width]`, all in bounds (checked
        // above); with `read_dst` false nothing of `out` is read.
        unsafe {
            gemm::gemm(
                m,
                width,
                k,
                out.as_mut_ptr().add(start),
                1,
                n as isize,
                false,
                x.as_ptr(),
                1,
                k as isize,
                tile.as_ptr(),
                1,
                width as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(0),
            );
        }
    }
    // SAFETY: the tiles cover the columns `0..n`, so every element of `[m, n]` was written.
    unsafe { out.set_len(m * n) };
}

impl HostNorm {
    fn new(norm: &LayerNorm) -> Self {
        HostNorm {
            gamma: f32_vec(norm.gamma.val()),
            beta: norm.beta.as_ref().map(|b| f32_vec(b.val())),
        }
    }

    /// `(x − mean) / sqrt(var + ε) · γ + β` over each `d`-wide row of `x`, in place.
    fn apply(&self, x: &mut [f32]) {
        let d = self.gamma.len() as f32;
        for row in x.chunks_exact_mut(self.gamma.len()) {
            let mean = row.iter().sum::<f32>() / d;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d;
            let inverse = 1.0 / (var + LAYER_NORM_EPSILON).sqrt();
            match &self.beta {
                Some(beta) => {
                    for ((v, g), b) in row.iter_mut().zip(&self.gamma).zip(beta) {
                        *v = (*v - mean) * inverse * g + b;
                    }
                }
                None => {
                    for (v, g) in row.iter_mut().zip(&self.gamma) {
                        *v = (*v - mean) * inverse * g;
                    }
                }
            }
        }
    }
}

impl HostLayer {
    fn new(layer: &DecoderLayer) -> Self {
        let (sa, ca) = (&layer.self_attention, &layer.cross_attention);
        HostLayer {
            self_qkv: HostLinear::side_by_side(&[&sa.query, &sa.key, &sa.value]),
            self_out: HostLinear::new(&sa.output),
            cross_query: HostLinear::new(&ca.query),
            cross_kv: HostLinear::side_by_side(&[&ca.key, &ca.value]),
            cross_out: HostLinear::new(&ca.output),
            ff_inner: HostLinear::new(&layer.feed_forward.inner),
            ff_outer: HostLinear::new(&layer.feed_forward.outer),
            norms: [
                HostNorm::new(&layer.self_attention_norm),
                HostNorm::new(&layer.cross_attention_norm),
                HostNorm::new(&layer.feed_forward_norm),
            ],
        }
    }
}

/// Columns `[from, from + width)` of each `stride`-wide row of `x`.
fn columns(x: &[f32], stride: usize, from: usize, width: usize) -> Vec<f32> {
    x.chunks_exact(stride)
        .flat_map(|row| &row[from..from + width])
        .copied()
        .collect()
}

impl HostDecoder {
    /// The CPU decoder of `model` when `device` is the CPU (burn-flex); elsewhere decoding stays in
    /// tensor operations on the device.
    pub fn for_device(model: &Transformer, device: &Device) -> Option<Self> {
        on_cpu(device).then(|| Self::new(model))
    }

    /// Copies the decoder of `model` (its weights on any device) into host memory.
    pub fn new(model: &Transformer) -> Self {
        let embedding = model.target_embedding().weight.val();
        let d = embedding.dims()[1];
        HostDecoder {
            d,
            heads: model.decoder.first().map_or(1, |l| l.self_attention.heads),
            pre_norm: model.decoder.first().is_some_and(|l| l.pre_norm),
            embedding: f32_vec(embedding),
            layers: model.decoder.iter().map(HostLayer::new).collect(),
            final_norm: model.decoder_norm.as_ref().map(HostNorm::new),
            output: {
                let w = model.output_matrix();
                let [d, vocab] = w.dims();
                Tiled::new(&f32_vec(w), d, vocab)
            },
        }
    }

    /// Encodes `src` `[rows, S]` with the tensor model and computes every layer's cross-attention
    /// keys and values once.
    pub(crate) fn start(&self, model: &Transformer, src: Tensor<2, Int>, pad_id: u32) -> HostCache {
        let mask = Transformer::source_mask(&src, pad_id);
        let memory = model.encode(src, &mask);
        let [_, source_len, _] = memory.dims();
        let memory = f32_vec(memory);
        let d = self.d;
        let cross = self
            .layers
            .iter()
            .map(|layer| {
                let kv = layer.cross_kv.forward(&memory);
                (columns(&kv, 2 * d, 0, d), columns(&kv, 2 * d, d, d))
            })
            .collect();
        let padding = mask.into_data().convert::<bool>();
        let source_valid = padding
            .as_slice::<bool>()
            // Cannot fail: converted to bool above.
            .expect("bool mask")
            .iter()
            .map(|&pad| !pad)
            .collect();
        HostCache::new(d, self.heads, cross, source_len, source_valid)
    }

    /// One decoding step: the output logits `[rows, vocab]` of `tokens` (the last tokens of the
    /// cache's rows, at position `cache.positions()`) into `out`.
    pub(crate) fn step(&self, tokens: &[u32], cache: &mut HostCache, out: &mut Vec<f32>) {
        let hidden = self.hidden(tokens, cache);
        self.logits_into(&hidden, out);
    }

    /// Model width `d`: the row length of [`hidden`](Self::hidden)'s states.
    pub(crate) fn width(&self) -> usize {
        self.d
    }

    /// The output logits `[rows, vocab]` of decoder states `hidden` (`[rows, d]`) into `out`. Each
    /// row's logits are the same bit for bit whatever rows are computed with it.
    pub(crate) fn logits_into(&self, hidden: &[f32], out: &mut Vec<f32>) {
        product_into(hidden, &self.output, out);
    }

    /// The step up to the output layer: the final decoder states `[rows, d]` of `tokens`, written
    /// into the cache as [`step`](Self::step) does.
    pub(crate) fn hidden(&self, tokens: &[u32], cache: &mut HostCache) -> Vec<f32> {
        let d = self.d;
        let position = cache.positions();
        let scale = (d as f32).sqrt();
        let pe = position_values(position, 1, d);
        let mut x: Vec<f32> = Vec::with_capacity(tokens.len() * d);
        for &t in tokens {
            let e = &self.embedding[t as usize * d..(t as usize + 1) * d];
            x.extend(e.iter().zip(&pe).map(|(e, p)| e * scale + p));
        }
        cache.next_position();
        for (l, layer) in self.layers.iter().enumerate() {
            self.sublayer(&mut x, &layer.norms[0], |h| {
                let context = cache.self_attend(l, layer.self_qkv.forward(h));
                layer.self_out.forward(&context)
            });
            self.sublayer(&mut x, &layer.norms[1], |h| {
                let q = layer.cross_query.forward(h);
                layer.cross_out.forward(&cache.cross_attend(l, &q))
            });
            self.sublayer(&mut x, &layer.norms[2], |h| {
                let mut inner = layer.ff_inner.forward(h);
                for v in inner.iter_mut() {
                    *v = v.max(0.0);
                }
                layer.ff_outer.forward(&inner)
            });
        }
        if let Some(norm) = &self.final_norm {
            norm.apply(&mut x);
        }
        x
    }

    /// A residual sub-layer around `f`: pre-norm `x + f(LN(x))`, post-norm `LN(x + f(x))`.
    fn sublayer(&self, x: &mut [f32], norm: &HostNorm, f: impl FnOnce(&[f32]) -> Vec<f32>) {
        let y = if self.pre_norm {
            let mut h = x.to_vec();
            norm.apply(&mut h);
            f(&h)
        } else {
            f(x)
        };
        for (x, y) in x.iter_mut().zip(y) {
            *x += y;
        }
        if !self.pre_norm {
            norm.apply(x);
        }
    }
}
