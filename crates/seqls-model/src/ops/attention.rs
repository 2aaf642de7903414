//! Multi-head scaled dot-product attention with dropout on the weights, on the CPU as one operation
//! with its backward pass written by hand.
//!
//! Per batch row and head, with queries `Q` `[Tq, dh]`, keys `K` and values `V` `[Tk, dh]` (the head's
//! columns of `[B, T, d]` projections) and `s = 1/√dh`: scores `S = s·Q·Kᵀ`, set to −10⁹ where
//! attention is forbidden (source padding, or later positions under the causal mask), `P = softmax(S)`
//! over the keys, `W = P ⊙ M` (the dropout mask of [`crate::ops::dropout`], drawn in `[B, H, Tq, Tk]` order),
//! output `O = W·V`, heads side by side `[B, Tq, d]`. Backward with `G = ∂L/∂O`: `∂L/∂W = G·Vᵀ`,
//! `∂L/∂V = Wᵀ·G`, `∂L/∂P = ∂L/∂W ⊙ M`, `∂L/∂S = P ⊙ (∂L/∂P − rowsum(P ⊙ ∂L/∂P))` (0 where
//! forbidden), `∂L/∂Q = s·∂L/∂S·K`, `∂L/∂K = s·∂L/∂Sᵀ·Q`. The backward pass recomputes `P` and
//! redraws `M`, so nothing but the inputs is kept.
//!
//! burn runs this as a dozen tensor operations (head split, scaling, batched products, mask, the
//! softmax's five passes, dropout, head merge), each allocating its output, with as many in the
//! backward pass; at translation lengths (tens of positions) the allocations cost more than the
//! arithmetic. Batch rows run in parallel; each row's values are computed in a fixed order, so results
//! do not depend on the number of threads.

use crate::ops::dropout::{self, Dropout};
use crate::ops::host_ops::{View, contiguous, lane_sum, product_into, tensor, values};
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{Bool, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The score of a forbidden query/key pair (burn's `mask_fill` value in the tensor path).
const FORBIDDEN: f32 = -1e9;

/// What an attention call attends over, besides its tensors.
#[derive(Clone, Debug)]
pub struct AttentionSpec {
    pub heads: usize,
    /// `B·Tk` flags, `true` at padded keys (empty: none).
    pub padding: Vec<bool>,
    /// Query `i` may not attend to keys `j > i`.
    pub causal: bool,
    /// Dropout on the weights.
    pub dropout: WeightDropout,
}

/// Dropout on the attention weights: where the counter-based mask stream starts, and the probability.
#[derive(Debug, Clone, Copy)]
pub struct WeightDropout {
    /// The mask generator's key.
    pub key: u64,
    /// Its first counter.
    pub start: u32,
    /// The probability of dropping a weight (0: none).
    pub prob: f64,
}

/// The fused attention as a backend operation (see the module documentation).
#[backend_extension(Flex, Autodiff)]
pub trait AttentionOps: Backend {
    /// `O` `[B, Tq, d]` of queries `[B, Tq, d]`, keys and values `[B, Tk, d]`.
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        spec: AttentionSpec,
    ) -> FloatTensor<Self>;
}

/// The backward pass of [`AttentionOps::fused_attention`] on a backend without autodiff.
pub trait AttentionBackward: Backend {
    /// `[∂L/∂Q, ∂L/∂K, ∂L/∂V]` of the inputs and the output's gradient `grad`.
    fn fused_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        spec: AttentionSpec,
    ) -> [FloatTensor<Self>; 3];
}

fn dims3(t: &FlexTensor) -> [usize; 3] {
    let shape = t.layout().shape();
    assert_eq!(shape.num_dims(), 3, "attention takes [B, T, d] tensors");
    [shape[0], shape[1], shape[2]]
}

/// The shapes of one call.
#[derive(Clone, Copy)]
struct Sizes {
    tq: usize,
    tk: usize,
    d: usize,
    heads: usize,
    dh: usize,
}

impl Sizes {
    /// The sizes of `tq` queries and `tk` keys of width `d`, split into `heads` heads of `d / heads`
    /// columns, which must cover `d` (every output column belongs to one head's product).
    fn new(tq: usize, tk: usize, d: usize, heads: usize) -> Self {
        assert!(
            heads > 0 && d.is_multiple_of(heads),
            "{heads} heads divide d = {d}"
        );
        Sizes {
            tq,
            tk,
            d,
            heads,
            dh: d / heads,
        }
    }

    /// Elements of one batch row's weights `[H, Tq, Tk]`.
    fn weights(&self) -> usize {
        self.heads * self.tq * self.tk
    }
}

/// `a·b` (`a` `[m, k]`, `b` `[k, n]`, views of one head's columns or block) written over the `[m, n]`
/// elements of `out` at row stride `stride` (without reading them: `out` may be uninitialised); every
/// operand is checked to lie inside its buffer.
fn head_product(
    m: usize,
    n: usize,
    k: usize,
    (out, stride): (&mut [MaybeUninit<f32>], usize),
    a: View,
    b: View,
) {
    assert!(a.holds(m, k) && b.holds(k, n), "operands in bounds");
    assert!(
        m == 0 || out.len() >= (m - 1) * stride + n,
        "output block in bounds"
    );
    // SAFETY: all three blocks were checked to lie inside their buffers; the product writes the
    // output block without reading it.
    unsafe { product_into(m, n, k, (out.as_mut_ptr().cast(), stride), false, a, b) }
}

/// `values` as slots to be written over (always sound: writing an `f32` keeps them initialised).
fn slots(values: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and only `f32` values are written.
    unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast(), values.len()) }
}

/// A `[len]` buffer filled by `write` without zero-filling it first: `write` gets the buffer's
/// uninitialised slots and must write every one of them (here: one head product per head, whose
/// columns `h·dh..(h + 1)·dh` together cover `d = heads·dh`).
fn written(len: usize, write: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut out: Vec<f32> = Vec::with_capacity(len);
    write(&mut out.spare_capacity_mut()[..len]);
    // SAFETY: `write` wrote all `len` slots (the caller's contract above).
    unsafe { out.set_len(len) };
    out
}

/// Whether query `i` may not attend to key `j` of batch row `b`.
fn forbidden(spec: &AttentionSpec, b: usize, tk: usize, i: usize, j: usize) -> bool {
    (spec.causal && j > i) || (!spec.padding.is_empty() && spec.padding[b * tk + j])
}

/// `P` `[H, Tq, Tk]` of batch row `b` (its queries `q` `[Tq, d]`, keys `k` `[Tk, d]`).
fn probabilities(q: &[f32], k: &[f32], b: usize, n: Sizes, spec: &AttentionSpec) -> Vec<f32> {
    let scale = (1.0 / (n.dh as f64).sqrt()) as f32;
    let mut p = vec![0f32; n.weights()];
    for h in 0..n.heads {
        let block = &mut p[h * n.tq * n.tk..(h + 1) * n.tq * n.tk];
        let (qh, kh) = (&q[h * n.dh..], &k[h * n.dh..]);
        let (rows, keys) = (View::rows(qh, n.d), View::transposed(kh, n.d));
        head_product(n.tq, n.tk, n.dh, (slots(block), n.tk), rows, keys);
        for (i, row) in block.chunks_exact_mut(n.tk).enumerate() {
            for (j, s) in row.iter_mut().enumerate() {
                *s = if forbidden(spec, b, n.tk, i, j) {
                    FORBIDDEN
                } else {
                    *s * scale
                };
            }
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for s in row.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            for s in row.iter_mut() {
                *s /= sum;
            }
        }
    }
    p
}

/// `P ⊙ M` (or `x ⊙ M` for a gradient) of batch row `b`: the row's dropout mask elements.
fn masked(x: Vec<f32>, b: usize, n: Sizes, spec: &AttentionSpec) -> Vec<f32> {
    let WeightDropout { key, start, prob } = spec.dropout;
    if prob == 0.0 {
        return x;
    }
    let first = start.wrapping_add((b * n.weights()) as u32);
    dropout::apply(&x, key, first, prob)
}

impl AttentionOps for Flex {
    fn fused_attention(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        spec: AttentionSpec,
    ) -> FlexTensor {
        let (q, k, v) = (contiguous(q), contiguous(k), contiguous(v));
        let ([batch, tq, d], [_, tk, _]) = (dims3(&q), dims3(&k));
        let n = Sizes::new(tq, tk, d, spec.heads);
        let (q, k, v) = (values(&q), values(&k), values(&v));
        let out = written(batch * tq * d, |out| {
            out.par_chunks_mut(tq * d).enumerate().for_each(|(b, out)| {
                let (qb, kb, vb) = (&q[b * tq * d..], &k[b * tk * d..], &v[b * tk * d..]);
                let p = probabilities(qb, kb, b, n, &spec);
                let w = masked(p, b, n, &spec);
                for h in 0..n.heads {
                    let (wh, vh) = (
                        View::rows(&w[h * tq * tk..], tk),
                        View::rows(&vb[h * n.dh..], d),
                    );
                    head_product(tq, n.dh, tk, (&mut out[h * n.dh..], d), wh, vh);
                }
            })
        });
        tensor(out, [batch, tq, d])
    }
}

impl AttentionBackward for Flex {
    fn fused_attention_backward(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        grad: FlexTensor,
        spec: AttentionSpec,
    ) -> [FlexTensor; 3] {
        let (q, k, v, g) = (
            contiguous(q),
            contiguous(k),
            contiguous(v),
            contiguous(grad),
        );
        let ([batch, tq, d], [_, tk, _]) = (dims3(&q), dims3(&k));
        let n = Sizes::new(tq, tk, d, spec.heads);
        let scale = (1.0 / (n.dh as f64).sqrt()) as f32;
        let (q, k, v, g) = (values(&q), values(&k), values(&v), values(&g));
        let (q_len, k_len) = (batch * tq * d, batch * tk * d);
        let (mut dq, mut dk, mut dv): (Vec<f32>, Vec<f32>, Vec<f32>) = (
            Vec::with_capacity(q_len),
            Vec::with_capacity(k_len),
            Vec::with_capacity(k_len),
        );
        // Every slot is written by one head product (see `written`).
        dq.spare_capacity_mut()[..q_len]
            .par_chunks_mut(tq * d)
            .zip(dk.spare_capacity_mut()[..k_len].par_chunks_mut(tk * d))
            .zip(dv.spare_capacity_mut()[..k_len].par_chunks_mut(tk * d))
            .enumerate()
            .for_each(|(b, ((dq, dk), dv))| {
                let (qb, kb, vb) = (&q[b * tq * d..], &k[b * tk * d..], &v[b * tk * d..]);
                let gb = &g[b * tq * d..];
                let p = probabilities(qb, kb, b, n, &spec);
                let w = masked(p.clone(), b, n, &spec);
                let mut dw = vec![0f32; n.weights()];
                for h in 0..n.heads {
                    let (block, cols) = (h * tq * tk, h * n.dh);
                    let (gh, vh) = (View::rows(&gb[cols..], d), View::transposed(&vb[cols..], d));
                    // ∂L/∂W = G·Vᵀ, ∂L/∂V = Wᵀ·G.
                    head_product(tq, tk, n.dh, (slots(&mut dw[block..]), tk), gh, vh);
                    let wt = View::transposed(&w[block..], tk);
                    head_product(tk, n.dh, tq, (&mut dv[cols..], d), wt, gh);
                }
                let mut ds = masked(dw, b, n, &spec);
                for h in 0..n.heads {
                    let block = h * tq * tk..(h + 1) * tq * tk;
                    let rows = p[block.clone()].chunks_exact(tk);
                    for (i, (pr, dsr)) in rows.zip(ds[block].chunks_exact_mut(tk)).enumerate() {
                        let inner = lane_sum(pr, dsr, |p, g| p * g);
                        for (j, (&p, s)) in pr.iter().zip(dsr.iter_mut()).enumerate() {
                            *s = if forbidden(&spec, b, tk, i, j) {
                                0.0
                            } else {
                                p * (*s - inner) * scale
                            };
                        }
                    }
                }
                for h in 0..n.heads {
                    let (block, cols) = (h * tq * tk, h * n.dh);
                    let (dsh, dst) = (
                        View::rows(&ds[block..], tk),
                        View::transposed(&ds[block..], tk),
                    );
                    // ∂L/∂Q = ∂L/∂S·K, ∂L/∂K = ∂L/∂Sᵀ·Q.
                    head_product(
                        tq,
                        n.dh,
                        tk,
                        (&mut dq[cols..], d),
                        dsh,
                        View::rows(&kb[cols..], d),
                    );
                    head_product(
                        tk,
                        n.dh,
                        tq,
                        (&mut dk[cols..], d),
                        dst,
                        View::rows(&qb[cols..], d),
                    );
                }
            });
        // SAFETY: the heads' products above wrote every element of the three buffers.
        unsafe {
            dq.set_len(q_len);
            dk.set_len(k_len);
            dv.set_len(k_len);
        }
        [
            tensor(dq, [batch, tq, d]),
            tensor(dk, [batch, tk, d]),
            tensor(dv, [batch, tk, d]),
        ]
    }
}

impl<B: Backend + AttentionOps + AttentionBackward, C: CheckpointStrategy> AttentionOps
    for Autodiff<B, C>
{
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        spec: AttentionSpec,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct FusedAttention;

        impl<B: Backend + AttentionBackward> Backward<B, 3> for FusedAttention {
            /// The checkpointed queries, keys and values, and the call's spec.
            type State = (NodeId, NodeId, NodeId, AttentionSpec);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_q, node_k, node_v] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (q_state, k_state, v_state, spec) = ops.state;
                let q = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(q_state);
                let k = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(k_state);
                let v = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(v_state);
                let [dq, dk, dv] = B::fused_attention_backward(q, k, v, grad, spec);
                for (node, grad) in [(node_q, dq), (node_k, dk), (node_v, dv)] {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, grad);
                    }
                }
            }
        }

        match FusedAttention
            .prepare::<C>([q.node(), k.node(), v.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (
                    prep.checkpoint(&q),
                    prep.checkpoint(&k),
                    prep.checkpoint(&v),
                    spec.clone(),
                );
                prep.finish(
                    state,
                    B::fused_attention(
                        q.into_primitive(),
                        k.into_primitive(),
                        v.into_primitive(),
                        spec,
                    ),
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_attention(
                q.into_primitive(),
                k.into_primitive(),
                v.into_primitive(),
                spec,
            )),
        }
    }
}

/// Attention of queries `q` `[B, Tq, d]` over keys and values `[B, Tk, d]` (projected, heads not
/// split) on the CPU: `padding` (`[B, 1, 1, Tk]`, `true` at padded keys) or the causal mask, and
/// `dropout` on the weights when training (an autodiff device). `[B, Tq, d]`.
pub fn fused(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    heads: usize,
    padding: Option<&Tensor<4, Bool>>,
    causal: bool,
    dropout: &Dropout,
) -> Tensor<3> {
    let [b, tq, _] = q.dims();
    let tk = k.dims()[1];
    let padding = padding.map_or_else(Vec::new, |mask| {
        mask.clone()
            .into_data()
            .convert::<bool>()
            .try_into_vec::<bool>()
            .expect("a bool mask")
    });
    let spec = AttentionSpec {
        heads,
        padding,
        causal,
        dropout: dropout.draw(b * heads * tq * tk, &q.device()).map_or(
            WeightDropout {
                key: 0,
                start: 0,
                prob: 0.0,
            },
            |(key, start)| WeightDropout {
                key,
                start,
                prob: dropout.prob,
            },
        ),
    };
    Tensor::from_dispatch(<Dispatch as AttentionOps>::fused_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        spec,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::softmax;
    use burn::tensor::{Device, Distribution, TensorData};

    /// burn's composition, as the model's tensor path runs it.
    fn composed(
        q: Tensor<3>,
        k: Tensor<3>,
        v: Tensor<3>,
        heads: usize,
        mask: Tensor<4, Bool>,
        dropout: &Dropout,
    ) -> Tensor<3> {
        let split = |x: Tensor<3>| {
            let [b, l, d] = x.dims();
            x.reshape([b, l, heads, d / heads]).swap_dims(1, 2)
        };
        let [b, tq, d] = q.dims();
        let tk = k.dims()[1];
        let q = split(q).mul_scalar(1.0 / ((d / heads) as f64).sqrt());
        let scores = q
            .matmul(split(k).swap_dims(2, 3))
            .mask_fill(mask.expand([b, heads, tq, tk]), -1e9);
        let weights = dropout.forward(softmax(scores, 3));
        weights.matmul(split(v)).swap_dims(1, 2).reshape([b, tq, d])
    }

    fn vec(t: Tensor<3>) -> Vec<f32> {
        crate::tensors::f32_vec(t)
    }

    /// Output and the gradients of queries, keys and values equal burn's composition under
    /// autodiff (to 1e-5): with source padding (rows of different lengths) and with the causal mask,
    /// with dropout on the weights (the same mask elements drawn) and without.
    #[test]
    fn matches_burns_composition_and_its_gradients() {
        let device = Device::flex().autodiff();
        device.seed(12);
        let (b, tq, tk, d, heads) = (3, 5, 6, 12, 3);
        // Row 1 has 2 padded keys, row 2 one.
        let pad: Vec<bool> = (0..b * tk)
            .map(|i| matches!((i / tk, i % tk), (1, 4..) | (2, 5)))
            .collect();
        let padding = Tensor::<4, Bool>::from_data(TensorData::new(pad, [b, 1, 1, tk]), &device);
        let causal = Tensor::<2, Bool>::tril_mask([tq, tq], 0, &device).unsqueeze::<4>();
        let inputs = [
            Tensor::<3>::random([b, tq, d], Distribution::Normal(0.0, 1.0), &device),
            Tensor::<3>::random([b, tk, d], Distribution::Normal(0.0, 1.0), &device),
            Tensor::<3>::random([b, tk, d], Distribution::Normal(0.0, 1.0), &device),
        ];
        let weights = Tensor::<3>::random([b, tq, d], Distribution::Default, &device);
        for (is_causal, prob) in [(false, 0.0), (false, 0.3), (true, 0.0), (true, 0.3)] {
            let dropout = Dropout::new(prob);
            let mut results = vec![];
            for fused_path in [false, true] {
                let [q, k, v] = inputs.clone().map(|t| t.require_grad());
                // The causal case attends within the queries' own positions.
                let (k_in, v_in) = if is_causal {
                    (q.clone(), q.clone())
                } else {
                    (k.clone(), v.clone())
                };
                let _masks = dropout::seeded(5);
                let out = match (fused_path, is_causal) {
                    (true, true) => fused(q.clone(), k_in, v_in, heads, None, true, &dropout),
                    (true, false) => fused(
                        q.clone(),
                        k_in,
                        v_in,
                        heads,
                        Some(&padding),
                        false,
                        &dropout,
                    ),
                    (false, true) => {
                        composed(q.clone(), k_in, v_in, heads, causal.clone(), &dropout)
                    }
                    (false, false) => {
                        composed(q.clone(), k_in, v_in, heads, padding.clone(), &dropout)
                    }
                };
                let grads = (out.clone() * weights.clone()).sum().backward();
                let grad = |t: &Tensor<3>| t.grad(&grads).map(vec).unwrap_or_default();
                results.push([vec(out), grad(&q), grad(&k), grad(&v)]);
            }
            for (i, what) in ["output", "queries", "keys", "values"].iter().enumerate() {
                let (want, got) = (&results[0][i], &results[1][i]);
                assert_eq!(want.len(), got.len(), "{what}");
                let worst = want
                    .iter()
                    .zip(got)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    worst < 1e-5,
                    "causal {is_causal} dropout {prob}: {what} differs by {worst}"
                );
            }
            assert!(results[0][1].iter().any(|g| g.abs() > 1e-2));
        }
    }
}
