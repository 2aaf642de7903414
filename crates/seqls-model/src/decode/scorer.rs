//! The [`Scorer`] that beam search drives: the model with an incremental key/value cache, one
//! decoder step per call. On the CPU the step is the hand-written `HostDecoder`; elsewhere the
//! tensor model's [`Transformer::decode_step`].

use crate::decode::host_cache::HostCache;
use crate::decode::host_decoder::HostDecoder;
use crate::ops::log_softmax::log_softmax_rows;
use crate::tensors::{f32_vec, int_tensor, padded_tensor};
use crate::transformer::{DecoderCache, Transformer};
use burn::tensor::Device;
use seqls_data::tokenizer::PAD;
use seqls_decode::Scorer;
use std::borrow::Cow;

/// The model as a beam-search scorer over a batch of sources, with an incremental key/value cache.
pub struct ModelScorer<'a> {
    model: &'a Transformer,
    step: Step<'a>,
    device: Device,
    vocab_size: usize,
}

/// How a decoder step runs.
enum Step<'a> {
    /// On the CPU, by hand.
    Host {
        decoder: Cow<'a, HostDecoder>,
        cache: HostCache,
    },
    /// As tensor operations on the model's device; `row_sources`: the source sentence of each row
    /// (a reorder within sentences leaves the cache's source side in place).
    Tensors {
        cache: DecoderCache,
        row_sources: Vec<usize>,
    },
}

impl<'a> ModelScorer<'a> {
    /// Encodes `sources` (each ending in `</s>`) once; one scorer row per source.
    pub fn new(model: &'a Transformer, sources: &[Vec<u32>], device: &Device) -> Self {
        let host = HostDecoder::for_device(model, device).map(Cow::Owned);
        Self::with_decoder(model, host, sources, device)
    }

    /// [`new`](Self::new) with the CPU decoder of `model` given (`None`: tensor operations).
    pub(crate) fn with_decoder(
        model: &'a Transformer,
        host: Option<Cow<'a, HostDecoder>>,
        sources: &[Vec<u32>],
        device: &Device,
    ) -> Self {
        let src = padded_tensor(sources, device);
        let step = match host {
            Some(decoder) => Step::Host {
                cache: decoder.start(model, src, PAD),
                decoder,
            },
            None => Step::Tensors {
                cache: model.start_decoding(src, PAD),
                row_sources: (0..sources.len()).collect(),
            },
        };
        let vocab_size = model.output_matrix().dims()[1];
        ModelScorer {
            model,
            step,
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

    fn next_log_probs(&mut self, last_tokens: &[u32], temperature: f32, out: &mut Vec<f32>) {
        match &mut self.step {
            Step::Host { decoder, cache } => decoder.step(last_tokens, cache, out),
            Step::Tensors { cache, .. } => {
                let tokens = int_tensor(last_tokens, [last_tokens.len()], &self.device);
                *out = f32_vec(self.model.decode_step(tokens, cache).0);
            }
        }
        log_softmax_rows(out, self.vocab_size, temperature);
    }

    /// On the CPU the decoder layers run for all rows at once and the output layer and the
    /// log-softmax a block of rows at a time, so that `[rows, vocab]` is never held whole.
    fn visit_next_log_probs(
        &mut self,
        last_tokens: &[u32],
        temperature: f32,
        block_rows: usize,
        buffer: &mut Vec<f32>,
        visit: &mut dyn FnMut(usize, &[f32]),
    ) {
        let block_rows = block_rows.max(1);
        match &mut self.step {
            Step::Host { decoder, cache } => {
                let hidden = decoder.hidden(last_tokens, cache);
                let d = decoder.width();
                for (b, rows) in hidden.chunks(block_rows * d).enumerate() {
                    decoder.logits_into(rows, buffer);
                    log_softmax_rows(buffer, self.vocab_size, temperature);
                    visit(b * block_rows, buffer);
                }
            }
            Step::Tensors { .. } => {
                self.next_log_probs(last_tokens, temperature, buffer);
                seqls_decode::scorer::visit_in_blocks(buffer, self.vocab_size, block_rows, visit);
            }
        }
    }

    fn reorder(&mut self, parents: &[usize]) {
        match &mut self.step {
            Step::Host { cache, .. } => cache.reorder(parents),
            Step::Tensors { cache, row_sources } => {
                let sources: Vec<usize> = parents.iter().map(|&p| row_sources[p]).collect();
                let same_sources = sources == *row_sources;
                *row_sources = sources;
                cache.reorder(parents, same_sources);
            }
        }
    }
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
                    cache.reorder(&[1, 0], false);
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

    /// The hand-written CPU step gives the tensor model's log-probabilities, for pre-norm with tied
    /// embeddings and post-norm with an output layer, with source padding, and through reorders that
    /// drop, duplicate and move rows across sources.
    #[test]
    fn host_and_tensor_steps_agree() {
        for pre_norm in [true, false] {
            let (model, device) = tiny(pre_norm);
            let sources = vec![vec![5, 6, 7, 8, 2], vec![9, 10, 2], vec![3, 4, 2]];
            let mut host = ModelScorer::new(&model, &sources, &device);
            assert!(matches!(host.step, Step::Host { .. }));
            let mut tensors = ModelScorer::with_decoder(&model, None, &sources, &device);
            let parents = [
                vec![0, 0, 1, 2, 2],
                vec![4, 3, 0, 1],
                vec![1, 1, 2, 3, 0, 2],
                vec![5, 0],
            ];
            let mut rows = sources.len();
            for step in 0..6 {
                let last: Vec<u32> = (0..rows as u32).map(|r| 3 + (r * 5 + step) % 19).collect();
                let (mut a, mut b) = (Vec::new(), Vec::new());
                host.next_log_probs(&last, 1.0, &mut a);
                tensors.next_log_probs(&last, 1.0, &mut b);
                assert_eq!(a.len(), rows * 23);
                for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                    assert!(
                        (x - y).abs() < 1e-4,
                        "pre_norm={pre_norm} step {step} [{i}]: {x} vs {y}"
                    );
                }
                let order = &parents[step as usize % parents.len()];
                let order: Vec<usize> = order.iter().map(|&p| p % rows).collect();
                host.reorder(&order);
                tensors.reorder(&order);
                rows = order.len();
            }
        }
    }

    /// Log-probabilities taken a block of rows at a time are those of the whole step, bit for bit.
    #[test]
    fn blocks_of_rows_give_the_whole_steps_log_probs() {
        let (model, device) = tiny(true);
        let sources = vec![vec![5, 6, 7, 8, 2], vec![9, 10, 2], vec![3, 4, 2]];
        for block_rows in [1, 2, 5, 64] {
            let mut whole = ModelScorer::new(&model, &sources, &device);
            let mut blocked = ModelScorer::new(&model, &sources, &device);
            let parents = [0usize, 0, 1, 2, 2, 2, 1];
            for step in 0..4u32 {
                let rows = if step == 0 { 3 } else { parents.len() };
                let last: Vec<u32> = (0..rows as u32).map(|r| 3 + (r * 5 + step) % 19).collect();
                let mut expected = Vec::new();
                whole.next_log_probs(&last, 0.9, &mut expected);
                let (mut got, mut buffer) = (vec![f32::NAN; expected.len()], Vec::new());
                blocked.visit_next_log_probs(
                    &last,
                    0.9,
                    block_rows,
                    &mut buffer,
                    &mut |first, lps| {
                        got[first * 23..first * 23 + lps.len()].copy_from_slice(lps);
                    },
                );
                let same = got
                    .iter()
                    .zip(&expected)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "block_rows {block_rows} step {step}");
                let order: Vec<usize> = parents.iter().map(|&p| p % rows).collect();
                whole.reorder(&order);
                blocked.reorder(&order);
            }
        }
    }

    /// Many steps, with reorders that move every row.
    #[test]
    fn a_long_incremental_decode_matches_the_full_forward_pass() {
        let (model, device) = tiny(true);
        let sources = vec![vec![5, 6, 7, 8, 2], vec![9, 10, 2], vec![3, 4, 2]];
        let t = 24;
        let targets: Vec<Vec<u32>> = (0..3u32)
            .map(|r| {
                std::iter::once(1)
                    .chain((1..t as u32).map(|i| 3 + (i * 7 + r * 5) % 20))
                    .collect()
            })
            .collect();
        let v = 23;
        let full: Vec<f32> = model
            .forward(
                padded_tensor(&sources, &device),
                padded_tensor(&targets, &device),
                PAD,
            )
            .logits
            .into_data()
            .try_into_vec()
            .unwrap();
        let mut cache = model.start_decoding(padded_tensor(&sources, &device), PAD);
        let mut order = vec![0usize, 1, 2];
        for step in 0..t {
            if step == 3 || step == 16 || step == 21 {
                let new = vec![order[2], order[0], order[1]];
                cache.reorder(&[2, 0, 1], false);
                order = new;
            }
            let last: Vec<u32> = order.iter().map(|&r| targets[r][step]).collect();
            let (logits, _) = model.decode_step(int_tensor(&last, [3], &device), &mut cache);
            let logits: Vec<f32> = logits.into_data().try_into_vec().unwrap();
            for (row, &r) in order.iter().enumerate() {
                for k in 0..v {
                    let (a, b) = (logits[row * v + k], full[(r * t + step) * v + k]);
                    assert!((a - b).abs() < 1e-4, "step {step} row {r}: {a} vs {b}");
                }
            }
        }
    }
}
