//! Teacher-forced scoring of given translations: per-token statistics and whole distributions.

use crate::tensors::{BatchTensors, int_tensor};
use crate::transformer::Transformer;
use burn::tensor::Device;
use burn::tensor::activation::log_softmax;
use seqls_data::Batch;
use seqls_data::tokenizer::{EOS, PAD};

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
    /// `p(</s> | source, reference prefix)`: whether the model would end the sentence here.
    pub eos_prob: f32,
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
    let eos_lp: Vec<f32> = log_probs
        .clone()
        .narrow(2, EOS as usize, 1)
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
                    eos_prob: eos_lp[i].exp(),
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
