//! An encoder-decoder transformer (Vaswani et al. 2017), read top to bottom: init → attention →
//! feed-forward → encoder layer → decoder layer → [`Transformer`] (its sizes are
//! [`crate::model_config`], its positions [`crate::positions`]).
//!
//! Shapes use `B` = batch rows, `S` = source length, `T` = target length, `d` = `d_model`, `H` = heads,
//! `dh = d / H`, `V` = vocabulary size. Token embeddings are scaled by `sqrt(d)` and added to sinusoidal
//! positions `PE(p, 2i) = sin(p / 10000^(2i/d))`, `PE(p, 2i+1) = cos(p / 10000^(2i/d))`.
//! Pre-norm layers compute `x + f(LN(x))` and end with a final LayerNorm; post-norm layers compute
//! `LN(x + f(x))`. The decoder supports incremental decoding with a key/value cache
//! ([`DecoderCache`]): self-attention keys/values are appended per step, cross-attention keys/values of
//! the source are computed once, and the rows of the cache can be reordered for beam search.

pub use crate::model_config::ModelConfig;
use crate::ops::attention;
use crate::ops::dropout::Dropout;
use crate::ops::layer_norm;
use crate::ops::linear::project;
use crate::positions::positions;
use crate::tensors::on_cpu;
use burn::module::Module;
use burn::nn::{
    Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

impl ModelConfig {
    /// Builds a freshly initialised model for a vocabulary of `vocab_size` ids.
    pub fn init(&self, vocab_size: usize, device: &Device) -> Transformer {
        let d = self.d_model;
        let embedding = || {
            EmbeddingConfig::new(vocab_size, d)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: (d as f64).powf(-0.5),
                })
                .init(device)
        };
        let final_norm = || self.pre_norm.then(|| LayerNormConfig::new(d).init(device));
        Transformer {
            src_embedding: embedding(),
            tgt_embedding: (!self.share_embeddings).then(embedding),
            encoder: (0..self.encoder_layers)
                .map(|_| EncoderLayer::new(self, device))
                .collect(),
            decoder: (0..self.decoder_layers)
                .map(|_| DecoderLayer::new(self, device))
                .collect(),
            encoder_norm: final_norm(),
            decoder_norm: final_norm(),
            output: (!self.tie_output).then(|| linear(d, vocab_size, false, device)),
            dropout: Dropout::new(self.dropout),
            d_model: d,
            max_len: self.max_len,
        }
    }
}

fn linear(d_in: usize, d_out: usize, bias: bool, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out)
        .with_bias(bias)
        .with_initializer(Initializer::XavierUniform { gain: 1.0 })
        .init(device)
}

/// Multi-head scaled dot-product attention: `softmax(Q Kᵀ / sqrt(dh) + mask) V`.
#[derive(Module, Debug)]
pub struct MultiHeadAttention {
    pub(crate) query: Linear,
    pub(crate) key: Linear,
    pub(crate) value: Linear,
    pub(crate) output: Linear,
    dropout: Dropout,
    pub(crate) heads: usize,
}

impl MultiHeadAttention {
    fn new(config: &ModelConfig, device: &Device) -> Self {
        let d = config.d_model;
        MultiHeadAttention {
            query: linear(d, d, true, device),
            key: linear(d, d, true, device),
            value: linear(d, d, true, device),
            output: linear(d, d, true, device),
            dropout: Dropout::new(config.dropout),
            heads: config.heads,
        }
    }

    /// `[B, L, d]` → `[B, H, L, dh]`.
    fn split_heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [b, l, d] = x.dims();
        x.reshape([b, l, self.heads, d / self.heads])
            .swap_dims(1, 2)
    }

    /// Queries, keys and values of `x` `[B, L, d]` (self-attention), each `[B, H, L, dh]`.
    fn queries_keys_values(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let (k, v) = self.keys_values(x.clone());
        (self.queries(x), k, v)
    }

    /// Teacher-forced attention from `x` `[B, Tq, d]` to `memory` `[B, Tk, d]` (`x` itself when
    /// `None`), under `mask` (`true` where forbidden, broadcastable to `[B, H, Tq, Tk]`; `causal` when
    /// it is the causal mask, else source padding `[B, 1, 1, Tk]`): `[B, Tq, d]`. On the CPU the
    /// attention itself is one operation ([`attention::fused`]).
    fn forward(
        &self,
        x: Tensor<3>,
        memory: Option<Tensor<3>>,
        mask: &Tensor<4, Bool>,
        causal: bool,
    ) -> Tensor<3> {
        let source = memory.unwrap_or_else(|| x.clone());
        if on_cpu(&x.device()) {
            let q = project(x, &self.query);
            let (k, v) = (
                project(source.clone(), &self.key),
                project(source, &self.value),
            );
            let padding = (!causal).then_some(mask);
            let context = attention::fused(q, k, v, self.heads, padding, causal, &self.dropout);
            return project(context, &self.output);
        }
        let (k, v) = self.keys_values(source);
        self.attend(self.queries(x), k, v, Some(mask.clone()))
    }

    /// Keys and values of `x` `[B, L, d]`, each `[B, H, L, dh]`.
    fn keys_values(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        (
            self.split_heads(project(x.clone(), &self.key)),
            self.split_heads(project(x, &self.value)),
        )
    }

    /// Queries of `x` `[B, L, d]`, `[B, H, L, dh]`.
    fn queries(&self, x: Tensor<3>) -> Tensor<4> {
        self.split_heads(project(x, &self.query))
    }

    /// Attends from `queries` `[B, H, Tq, dh]` to keys/values `[B, H, Tk, dh]`; `[B, Tq, d]`. `mask`
    /// is `true` where attention is forbidden, broadcastable to `[B, H, Tq, Tk]`.
    fn attend(
        &self,
        queries: Tensor<4>,
        keys: Tensor<4>,
        values: Tensor<4>,
        mask: Option<Tensor<4, Bool>>,
    ) -> Tensor<3> {
        let [b, h, tq, dh] = queries.dims();
        let q = queries.mul_scalar(1.0 / (dh as f64).sqrt());
        let mut scores = q.matmul(keys.swap_dims(2, 3));
        if let Some(mask) = mask {
            let tk = scores.dims()[3];
            scores = scores.mask_fill(mask.expand([b, h, tq, tk]), -1e9);
        }
        let weights = self.dropout.forward(softmax(scores, 3));
        let context = weights
            .matmul(values)
            .swap_dims(1, 2)
            .reshape([b, tq, h * dh]);
        project(context, &self.output)
    }
}

/// Position-wise feed-forward block: `W2 · dropout(relu(W1 x + b1)) + b2`.
#[derive(Module, Debug)]
pub struct FeedForward {
    pub(crate) inner: Linear,
    pub(crate) outer: Linear,
    dropout: Dropout,
}

impl FeedForward {
    fn new(config: &ModelConfig, device: &Device) -> Self {
        FeedForward {
            inner: linear(config.d_model, config.d_ff, true, device),
            outer: linear(config.d_ff, config.d_model, true, device),
            dropout: Dropout::new(config.dropout),
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let inner = self.dropout.forward(relu(project(x, &self.inner)));
        project(inner, &self.outer)
    }
}

/// A residual sub-layer around `f`: pre-norm `x + drop(f(LN(x)))`, post-norm `LN(x + drop(f(x)))`.
fn residual(
    x: Tensor<3>,
    norm: &LayerNorm,
    dropout: &Dropout,
    pre_norm: bool,
    f: impl FnOnce(Tensor<3>) -> Tensor<3>,
) -> Tensor<3> {
    if pre_norm {
        x.clone() + dropout.forward(f(layer_norm::norm(norm, x)))
    } else {
        layer_norm::norm(norm, x.clone() + dropout.forward(f(x)))
    }
}

/// Self-attention then feed-forward.
#[derive(Module, Debug)]
pub struct EncoderLayer {
    self_attention: MultiHeadAttention,
    feed_forward: FeedForward,
    attention_norm: LayerNorm,
    feed_forward_norm: LayerNorm,
    dropout: Dropout,
    pre_norm: bool,
}

impl EncoderLayer {
    fn new(config: &ModelConfig, device: &Device) -> Self {
        EncoderLayer {
            self_attention: MultiHeadAttention::new(config, device),
            feed_forward: FeedForward::new(config, device),
            attention_norm: LayerNormConfig::new(config.d_model).init(device),
            feed_forward_norm: LayerNormConfig::new(config.d_model).init(device),
            dropout: Dropout::new(config.dropout),
            pre_norm: config.pre_norm,
        }
    }

    /// `x` `[B, S, d]`, `pad_mask` `[B, 1, 1, S]` (true at source padding).
    fn forward(&self, x: Tensor<3>, pad_mask: &Tensor<4, Bool>) -> Tensor<3> {
        let attn = &self.self_attention;
        let x = residual(x, &self.attention_norm, &self.dropout, self.pre_norm, |h| {
            attn.forward(h, None, pad_mask, false)
        });
        residual(
            x,
            &self.feed_forward_norm,
            &self.dropout,
            self.pre_norm,
            |h| self.feed_forward.forward(h),
        )
    }
}

/// Causal self-attention, cross-attention to the source, feed-forward.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    pub(crate) self_attention: MultiHeadAttention,
    pub(crate) cross_attention: MultiHeadAttention,
    pub(crate) feed_forward: FeedForward,
    pub(crate) self_attention_norm: LayerNorm,
    pub(crate) cross_attention_norm: LayerNorm,
    pub(crate) feed_forward_norm: LayerNorm,
    dropout: Dropout,
    pub(crate) pre_norm: bool,
}

/// Cached keys/values of one decoder layer, each `[rows, H, len, dh]`: the self-attention's grow by
/// one position per step, the cross-attention's are computed once from the source.
///
/// The self-attention cache grows by concatenation. (On the CPU, decoding runs on a
/// [`HostDecoder`](crate::decode::host_decoder::HostDecoder) instead.)
#[derive(Clone, Debug)]
struct LayerCache {
    self_keys: Option<Tensor<4>>,
    self_values: Option<Tensor<4>>,
    cross_keys: Tensor<4>,
    cross_values: Tensor<4>,
}

/// `order` as an Int tensor of row indices.
fn index_tensor(order: &[usize], device: &Device) -> Tensor<1, Int> {
    let data: Vec<i64> = order.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(data, [order.len()]), device)
}

impl DecoderLayer {
    fn new(config: &ModelConfig, device: &Device) -> Self {
        let norm = || LayerNormConfig::new(config.d_model).init(device);
        DecoderLayer {
            self_attention: MultiHeadAttention::new(config, device),
            cross_attention: MultiHeadAttention::new(config, device),
            feed_forward: FeedForward::new(config, device),
            self_attention_norm: norm(),
            cross_attention_norm: norm(),
            feed_forward_norm: norm(),
            dropout: Dropout::new(config.dropout),
            pre_norm: config.pre_norm,
        }
    }

    /// Teacher-forced pass. `x` `[B, T, d]`, `memory` `[B, S, d]`, `causal` `[1, 1, T, T]`,
    /// `memory_mask` `[B, 1, 1, S]`.
    fn forward(
        &self,
        x: Tensor<3>,
        memory: Tensor<3>,
        causal: &Tensor<4, Bool>,
        memory_mask: &Tensor<4, Bool>,
    ) -> Tensor<3> {
        let (sa, ca) = (&self.self_attention, &self.cross_attention);
        let x = residual(
            x,
            &self.self_attention_norm,
            &self.dropout,
            self.pre_norm,
            |h| sa.forward(h, None, causal, true),
        );
        let x = residual(
            x,
            &self.cross_attention_norm,
            &self.dropout,
            self.pre_norm,
            |h| ca.forward(h, Some(memory), memory_mask, false),
        );
        residual(
            x,
            &self.feed_forward_norm,
            &self.dropout,
            self.pre_norm,
            |h| self.feed_forward.forward(h),
        )
    }

    /// One incremental step. `x` `[rows, 1, d]`; appends this position's keys/values to `cache`.
    fn step(
        &self,
        x: Tensor<3>,
        cache: &mut LayerCache,
        memory_mask: &Tensor<4, Bool>,
    ) -> Tensor<3> {
        let (sa, ca) = (&self.self_attention, &self.cross_attention);
        let x = residual(
            x,
            &self.self_attention_norm,
            &self.dropout,
            self.pre_norm,
            |h| {
                let (q, k, v) = sa.queries_keys_values(h);
                let (k, v) = match (cache.self_keys.take(), cache.self_values.take()) {
                    (Some(pk), Some(pv)) => {
                        (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2))
                    }
                    _ => (k, v),
                };
                cache.self_keys = Some(k.clone());
                cache.self_values = Some(v.clone());
                sa.attend(q, k, v, None)
            },
        );
        let (k, v) = (cache.cross_keys.clone(), cache.cross_values.clone());
        let x = residual(
            x,
            &self.cross_attention_norm,
            &self.dropout,
            self.pre_norm,
            |h| ca.attend(ca.queries(h), k, v, Some(memory_mask.clone())),
        );
        residual(
            x,
            &self.feed_forward_norm,
            &self.dropout,
            self.pre_norm,
            |h| self.feed_forward.forward(h),
        )
    }
}

/// The key/value cache of an incremental decode over `rows` hypotheses.
#[derive(Clone, Debug)]
pub struct DecoderCache {
    layers: Vec<LayerCache>,
    /// `[rows, 1, 1, S]`, true at source padding.
    memory_mask: Tensor<4, Bool>,
    /// Number of target positions already decoded.
    position: usize,
}

impl DecoderCache {
    /// Number of hypothesis rows.
    pub fn rows(&self) -> usize {
        self.memory_mask.dims()[0]
    }

    /// Keeps row `order[i]` as the new row `i` (beam search's "reorder by parent").
    ///
    /// The source side (cross-attention keys/values, source mask) depends only on each row's source
    /// sentence: with `same_sources` (row `order[i]` has the same source as row `i`, as when a beam is
    /// permuted within its sentence) it is left in place and only the self-attention cache moves.
    pub fn reorder(&mut self, order: &[usize], same_sources: bool) {
        let index = index_tensor(order, &self.memory_mask.device());
        if !same_sources {
            self.memory_mask = self.memory_mask.clone().select(0, index.clone());
        }
        let reorder = |t: Tensor<4>| t.select(0, index.clone());
        self.layers = std::mem::take(&mut self.layers)
            .into_iter()
            .map(|layer| {
                let (cross_keys, cross_values) = if same_sources {
                    (layer.cross_keys, layer.cross_values)
                } else {
                    (reorder(layer.cross_keys), reorder(layer.cross_values))
                };
                LayerCache {
                    self_keys: layer.self_keys.map(reorder),
                    self_values: layer.self_values.map(reorder),
                    cross_keys,
                    cross_values,
                }
            })
            .collect();
    }
}

/// What a decoder pass returns.
#[derive(Debug, Clone)]
pub struct DecoderOutput {
    /// Unnormalised scores, `[B, T, V]`.
    pub logits: Tensor<3>,
    /// Final decoder hidden state before the output projection (the "penultimate layer"), `[B, T, d]`.
    pub hidden: Tensor<3>,
}

/// The encoder-decoder translator.
#[derive(Module, Debug)]
pub struct Transformer {
    src_embedding: Embedding,
    /// `None` when source and target share `src_embedding`.
    tgt_embedding: Option<Embedding>,
    encoder: Vec<EncoderLayer>,
    pub(crate) decoder: Vec<DecoderLayer>,
    encoder_norm: Option<LayerNorm>,
    pub(crate) decoder_norm: Option<LayerNorm>,
    /// `None` when tied to the target embedding.
    pub(crate) output: Option<Linear>,
    dropout: Dropout,
    d_model: usize,
    /// Longest sequence (in positions) the model was built and trained for: `model.max_len`.
    max_len: usize,
}

impl Transformer {
    /// `model.max_len`: the positions the model was built and trained for.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The most tokens a translation may have before `</s>`: the decoder reads `<s>` and them, and
    /// must stay within the `model.max_len` positions it was trained for.
    pub fn max_output_len(&self) -> usize {
        self.max_len.saturating_sub(1).max(1)
    }

    pub(crate) fn target_embedding(&self) -> &Embedding {
        self.tgt_embedding.as_ref().unwrap_or(&self.src_embedding)
    }

    /// `sqrt(d) · E[tokens] + PE`, then dropout. `tokens` `[B, L]`, positions from `start`.
    fn embed(&self, embedding: &Embedding, tokens: Tensor<2, Int>, start: usize) -> Tensor<3> {
        let [_, len] = tokens.dims();
        let device = tokens.device();
        let x = embedding
            .forward(tokens)
            .mul_scalar((self.d_model as f64).sqrt());
        self.dropout
            .forward(x + positions(start, len, self.d_model, &device).unsqueeze::<3>())
    }

    /// The output-projection matrix `[d, V]` (the tied embedding transposed, or the output layer).
    pub fn output_matrix(&self) -> Tensor<2> {
        match &self.output {
            Some(linear) => linear.weight.val(),
            None => self.target_embedding().weight.val().transpose(),
        }
    }

    /// Logits `[B, T, V]` of hidden states `[B, T, d]`, as one 2-D product over the `B·T` rows
    /// ([`project_rows`](Self::project_rows)): a 3-D product would broadcast the `d × V` matrix over
    /// the batch, and its backward pass would build a `[B, d, V]` gradient to sum.
    fn project(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [b, t, d] = hidden.dims();
        let logits = self.project_rows(hidden.reshape([b * t, d]));
        let vocab = logits.dims()[1];
        logits.reshape([b, t, vocab])
    }

    /// [`project`](Self::project) of `[rows, d]` hidden states: a 2-D product, which the backend runs
    /// on the transposed embedding in place (the 3-D product first copies the `V × d` matrix).
    fn project_rows(&self, hidden: Tensor<2>) -> Tensor<2> {
        hidden.matmul(self.output_matrix())
    }

    /// `true` at source padding, `[B, 1, 1, S]`.
    pub fn source_mask(src: &Tensor<2, Int>, pad_id: u32) -> Tensor<4, Bool> {
        let [b, s] = src.dims();
        src.clone().equal_elem(pad_id as i64).reshape([b, 1, 1, s])
    }

    /// Encodes `src` `[B, S]` into `[B, S, d]`.
    pub fn encode(&self, src: Tensor<2, Int>, src_mask: &Tensor<4, Bool>) -> Tensor<3> {
        let mut x = self.embed(&self.src_embedding, src, 0);
        for layer in &self.encoder {
            x = layer.forward(x, src_mask);
        }
        match &self.encoder_norm {
            Some(norm) => layer_norm::norm(norm, x),
            None => x,
        }
    }

    /// Teacher-forced pass: `src` `[B, S]`, `tgt_in` `[B, T]` (`<s>` + target) → logits `[B, T, V]`.
    pub fn forward(
        &self,
        src: Tensor<2, Int>,
        tgt_in: Tensor<2, Int>,
        pad_id: u32,
    ) -> DecoderOutput {
        let hidden = self.decoder_states(src, tgt_in, pad_id);
        DecoderOutput {
            logits: self.project(hidden.clone()),
            hidden,
        }
    }

    /// The teacher-forced pass up to the output projection: the final decoder states `[B, T, d]`.
    pub fn decoder_states(
        &self,
        src: Tensor<2, Int>,
        tgt_in: Tensor<2, Int>,
        pad_id: u32,
    ) -> Tensor<3> {
        let src_mask = Self::source_mask(&src, pad_id);
        let memory = self.encode(src, &src_mask);
        let [_, t] = tgt_in.dims();
        let device = tgt_in.device();
        let causal = Tensor::<2, Bool>::tril_mask([t, t], 0, &device).unsqueeze::<4>();
        let mut x = self.embed(self.target_embedding(), tgt_in, 0);
        for layer in &self.decoder {
            x = layer.forward(x, memory.clone(), &causal, &src_mask);
        }
        match &self.decoder_norm {
            Some(norm) => layer_norm::norm(norm, x),
            None => x,
        }
    }

    /// Encodes `src` `[rows, S]` and computes every layer's cross-attention keys/values once.
    pub fn start_decoding(&self, src: Tensor<2, Int>, pad_id: u32) -> DecoderCache {
        let memory_mask = Self::source_mask(&src, pad_id);
        let memory = self.encode(src, &memory_mask);
        let layers = self
            .decoder
            .iter()
            .map(|layer| {
                let (cross_keys, cross_values) = layer.cross_attention.keys_values(memory.clone());
                LayerCache {
                    self_keys: None,
                    self_values: None,
                    cross_keys,
                    cross_values,
                }
            })
            .collect();
        DecoderCache {
            layers,
            memory_mask,
            position: 0,
        }
    }

    /// One incremental step: `tokens` `[rows]` are the last tokens of each row (position
    /// `cache.position`). Returns logits `[rows, V]` and hidden states `[rows, d]`.
    pub fn decode_step(
        &self,
        tokens: Tensor<1, Int>,
        cache: &mut DecoderCache,
    ) -> (Tensor<2>, Tensor<2>) {
        let [rows] = tokens.dims();
        let mut x = self.embed(
            self.target_embedding(),
            tokens.reshape([rows, 1]),
            cache.position,
        );
        for (layer, layer_cache) in self.decoder.iter().zip(cache.layers.iter_mut()) {
            x = layer.step(x, layer_cache, &cache.memory_mask);
        }
        cache.position += 1;
        let hidden = match &self.decoder_norm {
            Some(norm) => layer_norm::norm(norm, x),
            None => x,
        }
        .squeeze_dim::<2>(1);
        (self.project_rows(hidden.clone()), hidden)
    }
}
