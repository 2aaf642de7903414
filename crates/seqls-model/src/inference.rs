//! Running a trained [`Transformer`]: the [`Scorer`] that beam search drives (key/value cache, one
//! decoder step per call) and teacher-forced scoring of given translations.

use crate::transformer::{DecoderCache, Transformer};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use seqls_data::Batch;
use seqls_data::tokenizer::PAD;
use seqls_decode::Scorer;

/// Pads `rows` (token ids) to a `[rows, max_len]` tensor with `<pad>`.
pub fn padded_tensor(rows: &[Vec<u32>], device: &Device) -> Tensor<2, Int> {
    let len = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut data = vec![PAD as i64; rows.len() * len];
    for (r, row) in rows.iter().enumerate() {
        for (c, &t) in row.iter().enumerate() {
            data[r * len + c] = t as i64;
        }
    }
    Tensor::from_data(TensorData::new(data, [rows.len(), len]), device)
}

/// A row-major `u32` buffer as an Int tensor of `shape`.
pub fn int_tensor<const D: usize>(
    values: &[u32],
    shape: [usize; D],
    device: &Device,
) -> Tensor<D, Int> {
    let data: Vec<i64> = values.iter().map(|&v| v as i64).collect();
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// A padded [`Batch`] as tensors: `src` `[B, S]`, `tgt_in` and `tgt_out` `[B, T]`.
pub struct BatchTensors {
    pub src: Tensor<2, Int>,
    pub tgt_in: Tensor<2, Int>,
    pub tgt_out: Tensor<2, Int>,
}

impl BatchTensors {
    pub fn new(batch: &Batch, device: &Device) -> Self {
        BatchTensors {
            src: int_tensor(&batch.src, [batch.rows, batch.src_len], device),
            tgt_in: int_tensor(&batch.tgt_in, [batch.rows, batch.tgt_len], device),
            tgt_out: int_tensor(&batch.tgt_out, [batch.rows, batch.tgt_len], device),
        }
    }
}

/// The model as a beam-search scorer over a batch of sources, with an incremental key/value cache.
pub struct ModelScorer<'a> {
    model: &'a Transformer,
    cache: DecoderCache,
    /// The source sentence of each row.
    row_sources: Vec<usize>,
    device: Device,
    vocab_size: usize,
}

impl<'a> ModelScorer<'a> {
    /// Encodes `sources` (each ending in `</s>`) once; one scorer row per source.
    pub fn new(model: &'a Transformer, sources: &[Vec<u32>], device: &Device) -> Self {
        let cache = model.start_decoding(padded_tensor(sources, device), PAD);
        let vocab_size = model.output_matrix().dims()[1];
        ModelScorer {
            model,
            cache,
            row_sources: (0..sources.len()).collect(),
            device: device.clone(),
            vocab_size,
        }
    }
}

impl Scorer for ModelScorer<'_> {
    fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    fn max_output_len(&self) -> usize {
        self.model.max_output_len()
    }

    fn next_log_probs(&mut self, last_tokens: &[u32], temperature: f32) -> Vec<f32> {
        let tokens = int_tensor(last_tokens, [last_tokens.len()], &self.device);
        let (logits, _) = self.model.decode_step(tokens, &mut self.cache);
        let mut scores = logits
            .into_data()
            .try_into_vec::<f32>()
            // Cannot fail: the model computes in f32 on every backend, so the logits are f32.
            .expect("f32 logits");
        log_softmax_rows(&mut scores, self.vocab_size, temperature);
        scores
    }

    fn reorder(&mut self, parents: &[usize]) {
        let sources: Vec<usize> = parents.iter().map(|&p| self.row_sources[p]).collect();
        let same_sources = sources == self.row_sources;
        self.row_sources = sources;
        let order: Vec<u32> = parents.iter().map(|&p| p as u32).collect();
        self.cache.reorder(
            int_tensor(&order, [order.len()], &self.device),
            same_sources,
        );
    }
}

/// [`log_softmax_in_place`] on each `vocab`-wide row of `scores`, compiled for AVX2 when the CPU has it
/// (the portable build targets SSE2: 4 lanes instead of 8). Both paths do the same per-lane arithmetic in
/// the same order (no fused multiply-adds), so they give bit-identical results.
fn log_softmax_rows(scores: &mut [f32], vocab: usize, temperature: f32) {
    #[inline(always)]
    fn rows(scores: &mut [f32], vocab: usize, temperature: f32) {
        for row in scores.chunks_mut(vocab) {
            log_softmax_in_place(row, temperature);
        }
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn rows_avx2(scores: &mut [f32], vocab: usize, temperature: f32) {
            rows(scores, vocab, temperature);
        }
        // SAFETY: the CPU supports AVX2 (checked above).
        return unsafe { rows_avx2(scores, vocab, temperature) };
    }
    rows(scores, vocab, temperature);
}

/// `row ← log_softmax(row / temperature)`, in place: `x/T − m − ln Σ exp(x/T − m)` with `m` the row
/// maximum (so no exponent overflows). One pass over the row per term and no temporary tensors: on the
/// decoder's `[rows, vocab]` logits this is several times cheaper than the backend's five-op
/// composition, and the exponentials ([`exp_nonpositive`]) vectorise.
#[inline(always)]
fn log_softmax_in_place(row: &mut [f32], temperature: f32) {
    if temperature != 1.0 {
        row.iter_mut().for_each(|x| *x /= temperature);
    }
    // Eight lanes for the maximum and the sum, so both vectorise (`f32::max` folds do not: NaN rules);
    // ≤ vocab/8 terms per partial sum keep f32 to ~1e-6 relative.
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact(8);
    for chunk in &mut chunks {
        for (m, &x) in lanes.iter_mut().zip(chunk) {
            *m = if x > *m { x } else { *m };
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let mut partial = [0f32; 8];
    let mut chunks = row.chunks_exact(8);
    for chunk in &mut chunks {
        for (p, &x) in partial.iter_mut().zip(chunk) {
            *p += exp_nonpositive(x - max);
        }
    }
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|&x| exp_nonpositive(x - max))
        .sum();
    let sum = partial.iter().sum::<f32>() + tail;
    let shift = max + sum.ln();
    row.iter_mut().for_each(|x| *x -= shift);
}

/// `e^x` for `x ≤ 0` (a logit minus its row maximum), within 2e-7 relative of the exact value for
/// `x ≥ −87` (`e^−87 ≈ 1.6e−38`, the edge of the normal range; below it returns that value). Cody–Waite
/// reduction `x = n·ln 2 + r` with `n = round(x / ln 2)` and `|r| ≤ ln 2 / 2`, a degree-7 Taylor
/// polynomial for `e^r` (truncation error `|r|⁸/8! < 6e−9`), and `2^n` added to the exponent bits.
/// Branch-free, so the compiler vectorises it (libm's `expf` is a call per element).
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4; // ln 2 split so that n·LN2_HI is exact for |n| ≤ 128
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5·2²³: adding and subtracting it rounds to an integer
    let x = if x < -87.0 { -87.0 } else { x }; // not `f32::max`: its NaN rule blocks vectorising
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // The low mantissa bits of `shifted` hold `n` as an integer: no float → int cast (a saturating,
    // NaN-checking, scalar conversion in Rust).
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    f32::from_bits(p.to_bits().wrapping_add(n_bits << 23))
}

/// Teacher-forced statistics of one target position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenScore {
    /// The reference token.
    pub reference: u32,
    /// `log p(reference | source, reference prefix)`, nats.
    pub log_prob: f32,
    /// Probability of the most likely token (the top-class confidence).
    pub confidence: f32,
    /// The most likely token.
    pub predicted: u32,
}

/// Scores the references of `batch` with teacher forcing at temperature `temperature`. Returns, per row
/// of the batch, one [`TokenScore`] per target token (`</s>` last).
pub fn teacher_forced_scores(
    model: &Transformer,
    batch: &Batch,
    temperature: f32,
    device: &Device,
) -> Vec<Vec<TokenScore>> {
    let tensors = BatchTensors::new(batch, device);
    let logits = model.forward(tensors.src, tensors.tgt_in, PAD).logits;
    let logits = if temperature == 1.0 {
        logits
    } else {
        logits.div_scalar(temperature)
    };
    let log_probs = log_softmax(logits, 2);
    let reference = int_tensor(&batch.tgt_out, [batch.rows, batch.tgt_len, 1], device);
    let ref_lp: Vec<f32> = log_probs
        .clone()
        .gather(2, reference)
        .into_data()
        .try_into_vec()
        // Cannot fail: log-probabilities of an f32 model are f32.
        .expect("f32");
    let (max_lp, argmax) = log_probs.max_dim_with_indices(2);
    // Cannot fail: log-probabilities of an f32 model are f32.
    let max_lp: Vec<f32> = max_lp.into_data().try_into_vec().expect("f32");
    let argmax: Vec<i64> = argmax
        .into_data()
        .convert::<i64>()
        .try_into_vec()
        // Cannot fail: converted to i64 on the line above.
        .expect("i64");
    (0..batch.rows)
        .map(|r| {
            (0..batch.tgt_len)
                .map(|t| r * batch.tgt_len + t)
                .take_while(|&i| batch.tgt_out[i] != PAD)
                .map(|i| TokenScore {
                    reference: batch.tgt_out[i],
                    log_prob: ref_lp[i],
                    confidence: max_lp[i].exp(),
                    predicted: argmax[i] as u32,
                })
                .collect()
        })
        .collect()
}

/// Calls `f(log_probs, reference)` for every non-pad target position of `batch` under teacher forcing:
/// the model's log-probabilities over the whole vocabulary (temperature 1) and the reference id.
pub fn for_each_distribution(
    model: &Transformer,
    batch: &Batch,
    device: &Device,
    mut f: impl FnMut(&[f32], usize),
) {
    let tensors = BatchTensors::new(batch, device);
    let logits = model.forward(tensors.src, tensors.tgt_in, PAD).logits;
    let [_, _, k] = logits.dims();
    let log_probs: Vec<f32> = log_softmax(logits, 2)
        .into_data()
        .try_into_vec()
        // Cannot fail: log-probabilities of an f32 model are f32.
        .expect("f32");
    for (i, &reference) in batch.tgt_out.iter().enumerate() {
        if reference != PAD {
            f(&log_probs[i * k..(i + 1) * k], reference as usize);
        }
    }
}

/// The special-token ids of the project's tokenizer, for the search.
pub const SPECIAL_TOKENS: seqls_decode::SpecialTokens = seqls_decode::SpecialTokens {
    pad: PAD,
    bos: seqls_data::tokenizer::BOS,
    eos: seqls_data::tokenizer::EOS,
    unk: seqls_data::tokenizer::UNK,
};

/// Beam-searches every source (token ids ending in `</s>`; an empty vector gives no hypotheses),
/// at most `sentences_per_batch` at a time, grouped by length, and returns the n-best lists in input
/// order. The batches are tasks of a pool of `threads` threads (each batch is decoded independently,
/// so the output does not depend on the number of threads); burn-flex gains little from a second thread
/// inside one decoder step, but two independent batches use both cores.
/// `progress` is called with the number of sentences of each finished batch.
pub fn translate(
    model: &Transformer,
    sources: &[Vec<u32>],
    search: &seqls_decode::SearchConfig,
    device: &Device,
    sentences_per_batch: usize,
    threads: usize,
    mut progress: impl FnMut(usize),
) -> Vec<Vec<seqls_decode::Hypothesis>> {
    let mut order: Vec<usize> = (0..sources.len())
        .filter(|&i| !sources[i].is_empty())
        .collect();
    order.sort_by_key(|&i| sources[i].len());
    let workers = threads.max(1);
    let per_batch = sentences_per_batch
        .min(order.len().div_ceil(workers))
        .max(1);
    let batches: Vec<&[usize]> = order.chunks(per_batch).collect();
    let decode = |model: &Transformer, batch: &[usize]| {
        let rows: Vec<Vec<u32>> = batch.iter().map(|&i| sources[i].clone()).collect();
        let lens: Vec<usize> = rows.iter().map(|s| s.len() - 1).collect();
        let mut scorer = ModelScorer::new(model, &rows, device);
        seqls_decode::beam_search(&mut scorer, &lens, search, SPECIAL_TOKENS)
    };
    let mut out = vec![Vec::new(); sources.len()];
    // The batches run as tasks of a pool of exactly `threads` threads; the backend's own parallel
    // operations (a large gemm) join the same pool from inside a task, so no more than `threads`
    // threads compete for the cores, and an idle thread helps with a busy one's gemm. This thread
    // collects the results as they come, for `progress`.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        // Cannot fail: building a pool fails only when the OS refuses threads; --threads is capped at 1024.
        .expect("decoding thread pool");
    let (tx, rx) = std::sync::mpsc::channel();
    pool.in_place_scope(|scope| {
        for (b, &batch) in batches.iter().enumerate() {
            let (tx, decode) = (tx.clone(), &decode);
            scope.spawn(move |_| {
                let _ = tx.send((b, decode(model, batch)));
            });
        }
        drop(tx);
        for (b, nbests) in rx {
            for (&i, nbest) in batches[b].iter().zip(nbests) {
                out[i] = nbest;
            }
            progress(batches[b].len());
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transformer::ModelConfig;
    use burn::module::Module;

    fn tiny(pre_norm: bool) -> (Transformer, Device) {
        let device = Device::flex();
        device.seed(3);
        let config = ModelConfig {
            d_model: 16,
            heads: 2,
            encoder_layers: 2,
            decoder_layers: 2,
            d_ff: 32,
            dropout: 0.0,
            max_len: 32,
            pre_norm,
            tie_output: pre_norm,
            share_embeddings: pre_norm,
        };
        (config.init(23, &device).valid(), device)
    }

    #[test]
    fn fast_exponential_and_log_softmax_match_f64() {
        let mut worst = 0f64;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let exact = (x as f64).exp();
            worst = worst.max(((exp_nonpositive(x) as f64) - exact).abs() / exact);
        }
        assert!(worst < 2e-7, "relative error {worst}");
        assert!(exp_nonpositive(-1000.0) < 1e-37 && exp_nonpositive(0.0) == 1.0);
        for temperature in [1.0f32, 0.7] {
            let logits: Vec<f32> = (0..8003)
                .map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 9.0)
                .collect();
            let mut row = logits.clone();
            log_softmax_in_place(&mut row, temperature);
            let scaled: Vec<f64> = logits
                .iter()
                .map(|&x| x as f64 / temperature as f64)
                .collect();
            let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + scaled.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
            for (got, x) in row.iter().zip(&scaled) {
                assert!(
                    (*got as f64 - (x - lse)).abs() < 1e-5,
                    "{got} vs {}",
                    x - lse
                );
            }
            // The row-wise entry point (AVX2 where available) gives the same bits.
            let mut rows = [logits.clone(), logits.clone()].concat();
            log_softmax_rows(&mut rows, logits.len(), temperature);
            for chunk in rows.chunks(logits.len()) {
                assert!(
                    chunk
                        .iter()
                        .zip(&row)
                        .all(|(a, b)| a.to_bits() == b.to_bits())
                );
            }
        }
    }

    /// Incremental decoding with the cache (and a reorder in the middle) gives the teacher-forced logits.
    #[test]
    fn incremental_decoding_matches_the_full_forward_pass() {
        for pre_norm in [true, false] {
            let (model, device) = tiny(pre_norm);
            let sources = vec![vec![5, 6, 7, 8, 2], vec![9, 10, 2]];
            let targets = vec![vec![1u32, 11, 12, 13, 14], vec![1, 15, 16, 17, 18]];
            let full = model
                .forward(
                    padded_tensor(&sources, &device),
                    padded_tensor(&targets, &device),
                    PAD,
                )
                .logits;
            let full: Vec<f32> = full.into_data().try_into_vec().unwrap();
            let (t, v) = (5, 23);

            // Decode row order [0, 1] for two steps, then swap the rows and continue.
            let mut cache = model.start_decoding(padded_tensor(&sources, &device), PAD);
            let mut order = vec![0usize, 1];
            for step in 0..t {
                if step == 2 {
                    order = vec![1, 0];
                    cache.reorder(int_tensor(&[1, 0], [2], &device), false);
                }
                let last: Vec<u32> = order.iter().map(|&r| targets[r][step]).collect();
                let (logits, _) = model.decode_step(int_tensor(&last, [2], &device), &mut cache);
                let logits: Vec<f32> = logits.into_data().try_into_vec().unwrap();
                for (row, &r) in order.iter().enumerate() {
                    for k in 0..v {
                        let a = logits[row * v + k];
                        let b = full[(r * t + step) * v + k];
                        assert!(
                            (a - b).abs() < 1e-4,
                            "pre_norm={pre_norm} step {step} row {r}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}
