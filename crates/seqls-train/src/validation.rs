//! Validation: teacher-forced loss, NLL, perplexity and accuracy on the validation split, and
//! optionally the greedy BLEU of its translations.

use burn::tensor::Device;
use seqls_data::tokenizer::PAD;
use seqls_data::{Example, SubwordTokenizer, make_batch, plan_batches};
use seqls_decode::{LengthPenalty, SearchConfig};
use seqls_model::tensors::BatchTensors;
use seqls_model::{Transformer, loss_sums, translate};
use seqls_run::{ExperimentConfig, ValidMetrics};

/// Teacher-forced validation of `model` (without dropout) on `examples`.
pub fn validate(
    model: &Transformer,
    examples: &[Example],
    config: &ExperimentConfig,
    device: &Device,
) -> ValidMetrics {
    let (mut smoothed, mut nll, mut correct, mut tokens) = (0.0, 0.0, 0usize, 0usize);
    for group in plan_batches(examples, config.data.max_tokens, None) {
        let batch = make_batch(examples, &group);
        let tensors = BatchTensors::new(&batch, device);
        let logits = model.forward(tensors.src, tensors.tgt_in, PAD).logits;
        let sums = loss_sums(logits, &batch.tgt_out, config.train.smoothing());
        smoothed += sums.smoothed;
        nll += sums.nll;
        correct += sums.correct;
        tokens += sums.tokens;
    }
    let n = tokens.max(1) as f64;
    ValidMetrics {
        smoothed_loss: smoothed / n,
        nll: nll / n,
        perplexity: (nll / n).exp(),
        accuracy: correct as f64 / n,
        tokens,
    }
}

/// Greedy-decodes `examples` and returns the sacreBLEU score against `references`.
pub(crate) fn greedy_bleu(
    model: &Transformer,
    tokenizer: &SubwordTokenizer,
    examples: &[Example],
    references: &[String],
    device: &Device,
    threads: usize,
) -> Result<f64, crate::error::TrainError> {
    let search = SearchConfig {
        beam_size: 1,
        length_penalty: LengthPenalty::Power(0.0),
        ..SearchConfig::default()
    };
    let sources: Vec<Vec<u32>> = examples.iter().map(|e| e.src.clone()).collect();
    let hyps = translate(model, &sources, &search, device, 128, threads, |_| {})
        .into_iter()
        .map(|nbest| {
            tokenizer
                // Cannot fail: beam search finishes at least one hypothesis for every non-empty source.
                .decode(&nbest[0].tokens)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<String> = examples
        .iter()
        .map(|e| references[e.index].clone())
        .collect();
    Ok(seqls_eval::corpus_bleu(&hyps, &[refs], &seqls_eval::BleuOptions::default())?.score)
}
