//! One evaluation of a trained run on a split: decode with a search configuration, then
//!
//! - BLEU (sacreBLEU 13a, cased, detokenised output) with its signature, chrF, and the
//!   hypothesis/reference length ratio;
//! - inference calibration of the beam output (Wang et al. 2020; see [`seqls_eval::inference`]):
//!   every produced token, `</s>` included, with the probability the decoder gave it, correct when an
//!   edit-distance alignment to the reference token ids matches it;
//! - teacher-forced calibration of the reference tokens (top-class confidence, with and without
//!   `</s>`; and `p(</s>)` at every position as the chance that the sentence ends there), at T = 1
//!   and at the temperature T* that minimises validation NLL (golden-section search on [0.05, 10]
//!   to 1e-4); on the synthetic corpus, oracle calibration of each reference word's
//!   model probability (the product of its subword probabilities) against its true probability.
//!
//! Next to the JSON: the hypotheses (`.hyp.txt`), their per-sentence BLEU and chrF statistics
//! (`.bleu-stats.json`, `.chrf-stats.json`, for bootstraps without the references), the probability
//! of each hypothesis word (`.word-probs.txt`, for the report page) and the reliability diagrams.
//!
//! The teacher-forced part does not depend on the search, so it is computed once per run, split and
//! bin count and kept in `RUN/teacher-forced-<split>-bins<M>.json` (recomputed when the run's weights
//! are newer than that file).

use crate::error::{Result, SweepError};
use seqls_run::error::At;

use burn::tensor::Device;
use seqls_data::corpus::encode_for_inference;
use seqls_data::tokenizer::EOS;
use seqls_data::{Batch, Example, ParallelText, SubwordTokenizer};
use seqls_decode::SearchConfig;
use seqls_eval::calibration::{Calibration, calibration};
use seqls_eval::{
    BleuOptions, BleuReport, ErasureSums, InformationErasure, OracleCalibration, aligned_matches,
    chrf_sentence_stats, corpus_bleu, corpus_chrf, oracle_calibration, sentence_stats,
};
use seqls_model::{
    TokenScore, Transformer, for_each_distribution, teacher_forced_scores, translate,
};
use seqls_plot::{Reliability, ReliabilityGrid};
use seqls_run::{ExperimentConfig, RunDir};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Teacher-forced calibration of one split at one temperature.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeacherForced {
    pub temperature: f64,
    /// NLL per reference token (nats), `</s>` included.
    pub nll: f64,
    pub with_eos: Calibration,
    pub without_eos: Calibration,
    /// The end of sentence alone: at every reference position, the model's `p(</s>)` as the
    /// confidence that the sentence ends there, correct when the reference does end there. `</s>`
    /// decides length under beam search, and Kumar & Sarawagi (2019) found it the worst-calibrated
    /// token. Absent in evaluations written before it was measured.
    #[serde(default)]
    pub eos: Option<Calibration>,
}

/// The search-independent part of an evaluation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeacherForcedReport {
    pub at_1: TeacherForced,
    /// Temperature minimising validation NLL.
    pub fitted_temperature: f64,
    pub at_fitted: TeacherForced,
    /// Synthetic corpus only: model vs true probability of each reference word.
    pub oracle: Option<OracleCalibration>,
    /// Synthetic corpus only: sentences whose subwords could not be grouped into the oracle's words.
    pub oracle_skipped_sentences: usize,
    /// What the model's distribution says beyond the reference, on the validation split
    /// ([`seqls_eval::erasure`]).
    pub erasure: InformationErasure,
}

/// Everything `eval-<split>-beam<K>.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalReport {
    pub split: String,
    pub sentences: usize,
    pub search: SearchConfig,
    pub bleu: BleuReport,
    pub chrf: f64,
    pub chrf_signature: String,
    /// Hypothesis / reference length in 13a tokens.
    pub length_ratio: f64,
    pub sentences_per_sec: f64,
    /// Calibration of the tokens the search produced (best hypothesis of each sentence).
    pub inference: Calibration,
    pub teacher_forced: TeacherForced,
    pub fitted_temperature: f64,
    pub teacher_forced_at_fitted_temperature: TeacherForced,
    pub oracle: Option<OracleCalibration>,
    /// Validation split, teacher forced: the distribution over the non-reference tokens
    /// ([`seqls_eval::erasure`]). Absent in evaluations written before it was measured.
    #[serde(default)]
    pub erasure: Option<InformationErasure>,
    pub hypotheses_file: String,
    /// Reliability diagrams (teacher-forced, at T*, inference), PNG and SVG.
    pub figures: Vec<String>,
}

/// Teacher-forced token scores of `examples` at `temperature`, one vector per example.
fn scores_of(
    model: &Transformer,
    examples: &[Example],
    temperature: f32,
    device: &Device,
) -> Vec<Vec<TokenScore>> {
    let mut all = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(64) {
        let rows: Vec<&Example> = chunk.iter().collect();
        all.extend(teacher_forced_scores(
            model,
            &Batch::from_examples(&rows),
            temperature,
            device,
        ));
    }
    all
}

fn mean_nll(scores: &[Vec<TokenScore>]) -> f64 {
    let (sum, n) = scores
        .iter()
        .flatten()
        .fold((0.0, 0usize), |(s, n), t| (s - t.log_prob as f64, n + 1));
    sum / n.max(1) as f64
}

fn teacher_forced(scores: &[Vec<TokenScore>], temperature: f64, bins: usize) -> TeacherForced {
    let eos = {
        let all: Vec<&TokenScore> = scores.iter().flatten().collect();
        let conf: Vec<f64> = all.iter().map(|s| s.eos_prob as f64).collect();
        let ends: Vec<bool> = all.iter().map(|s| s.reference == EOS).collect();
        calibration(&conf, &ends, bins)
    };
    let calib = |keep: &dyn Fn(&TokenScore) -> bool| {
        let kept: Vec<&TokenScore> = scores.iter().flatten().filter(|s| keep(s)).collect();
        let conf: Vec<f64> = kept.iter().map(|s| s.confidence as f64).collect();
        let ok: Vec<bool> = kept.iter().map(|s| s.predicted == s.reference).collect();
        calibration(&conf, &ok, bins)
    };
    TeacherForced {
        temperature,
        nll: mean_nll(scores),
        with_eos: calib(&|_| true),
        without_eos: calib(&|s| s.reference != EOS),
        eos: Some(eos),
    }
}

/// The temperature minimising the NLL of `examples` (golden-section search over [0.05, 10] to 1e-4).
pub fn fit_temperature(model: &Transformer, examples: &[Example], device: &Device) -> f64 {
    let nll = |t: f64| mean_nll(&scores_of(model, examples, t as f32, device));
    let (mut a, mut b) = (0.05f64, 10.0f64);
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
    let (mut fc, mut fd) = (nll(c), nll(d));
    while b - a > 1e-4 {
        if fc < fd {
            (b, d, fd) = (d, c, fc);
            c = b - g * (b - a);
            fc = nll(c);
        } else {
            (a, c, fc) = (c, d, fd);
            d = a + g * (b - a);
            fd = nll(d);
        }
    }
    (a + b) / 2.0
}

/// Word-level oracle calibration on the synthetic corpus: groups each reference's subwords into words
/// (a token starting with `▁` starts a word), multiplies their probabilities, and compares with the
/// generator's true probability of the word. `</s>` is left out (it is certain).
fn oracle(
    config: &ExperimentConfig,
    split: &str,
    tokenizer: &SubwordTokenizer,
    examples: &[Example],
    scores: &[Vec<TokenScore>],
    bins: usize,
) -> (Option<OracleCalibration>, usize) {
    if config.data.corpus != seqls_data::Corpus::Synth {
        return (None, 0);
    }
    let pairs = config.data.synth_split(split);
    let (mut model_p, mut true_p, mut skipped) = (Vec::new(), Vec::new(), 0);
    for (example, tokens) in examples.iter().zip(scores) {
        let words = &pairs[example.index].oracle;
        let mut grouped: Vec<f64> = Vec::with_capacity(words.len());
        for s in tokens.iter().filter(|s| s.reference != EOS) {
            let starts_word = tokenizer
                .id_to_token(s.reference)
                .is_some_and(|t| t.starts_with('▁'));
            if starts_word || grouped.is_empty() {
                grouped.push(0.0);
            }
            // Cannot fail: a word was pushed on the line above when the list was empty.
            *grouped.last_mut().expect("a word") += s.log_prob as f64;
        }
        if grouped.len() != words.len() {
            skipped += 1;
            continue;
        }
        model_p.extend(grouped.iter().map(|lp| lp.exp()));
        true_p.extend(words.iter().map(|w| w.prob));
    }
    (Some(oracle_calibration(&model_p, &true_p, bins)), skipped)
}

/// Whether `cache`, a file computed from `run`'s weights, exists and is at least as new as them (a
/// cache older than the weights, written before training resumed, is stale).
fn fresh(run: &RunDir, cache: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let weights = [run.best_model(), run.checkpoint()]
        .into_iter()
        .filter_map(|p| modified(&p))
        .max();
    modified(cache).is_some_and(|c| weights.is_none_or(|w| c >= w))
}

/// [`fit_temperature`] of `run`'s model, read from a fresh teacher-forced cache of any split when
/// there is one (every split's cache holds the same fit, on the validation split), else fitted on
/// `valid` now.
pub fn run_fitted_temperature(
    run: &RunDir,
    model: &Transformer,
    valid: &[Example],
    device: &Device,
) -> f64 {
    let is_cache = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("teacher-forced-") && n.ends_with(".json"))
    };
    std::fs::read_dir(&run.root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|p| is_cache(p) && fresh(run, p))
        .find_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            serde_json::from_str::<TeacherForcedReport>(&text).ok()
        })
        .map_or_else(
            || fit_temperature(model, valid, device),
            |report| report.fitted_temperature,
        )
}

/// The teacher-forced report of `run`'s loaded model on `split` (encoded as `examples`), from its cache
/// file or computed (and cached).
#[allow(clippy::too_many_arguments)]
fn teacher_forced_report(
    run: &RunDir,
    config: &ExperimentConfig,
    tokenizer: &SubwordTokenizer,
    model: &Transformer,
    split: &str,
    examples: &[Example],
    bins: usize,
    device: &Device,
) -> Result<TeacherForcedReport> {
    let cache = run
        .root
        .join(format!("teacher-forced-{split}-bins{bins}.json"));
    if fresh(run, &cache)
        && let Ok(text) = std::fs::read_to_string(&cache)
        && let Ok(report) = serde_json::from_str::<TeacherForcedReport>(&text)
        // A cache written before `</s>` calibration was measured is recomputed.
        && report.at_1.eos.is_some()
    {
        return Ok(report);
    }
    let valid = encode_for_inference(
        tokenizer,
        &config.data.load_split("val")?.pairs,
        config.model.max_len,
    )?;
    let fitted_temperature = fit_temperature(model, &valid.examples, device);
    let mut erasure = ErasureSums::default();
    for chunk in valid.examples.chunks(64) {
        let rows: Vec<&Example> = chunk.iter().collect();
        for_each_distribution(model, &Batch::from_examples(&rows), device, |lp, y| {
            erasure.add(lp, y)
        });
    }
    let scores = scores_of(model, examples, 1.0, device);
    let fitted_scores = scores_of(model, examples, fitted_temperature as f32, device);
    let (oracle, oracle_skipped_sentences) =
        oracle(config, split, tokenizer, examples, &scores, bins);
    let report = TeacherForcedReport {
        at_1: teacher_forced(&scores, 1.0, bins),
        fitted_temperature,
        at_fitted: teacher_forced(&fitted_scores, fitted_temperature, bins),
        oracle,
        oracle_skipped_sentences,
        erasure: erasure.finish(),
    };
    seqls_data::write::write_atomic(&cache, serde_json::to_string_pretty(&report)?.as_bytes())?;
    Ok(report)
}

/// A split decoded with one search and scored with BLEU.
pub struct Decoded {
    /// The encoded pairs (those with both sides non-empty), in corpus order.
    pub encoded: seqls_data::EncodedCorpus,
    /// Per encoded pair, the n-best hypotheses.
    pub nbests: Vec<Vec<seqls_decode::Hypothesis>>,
    /// Per pair of the split, the detokenised best hypothesis (empty for pairs not encoded).
    pub hyps: Vec<String>,
    /// The reference stream.
    pub refs: Vec<Vec<String>>,
    /// sacreBLEU (cased, 13a) of `hyps` against `refs`.
    pub bleu: BleuReport,
    /// Wall-clock seconds of the decoding.
    pub seconds: f64,
}

/// Decodes every pair of `text` with `search` and scores the best hypotheses with BLEU. Pairs with an
/// empty side are not decoded; their references still count, against empty hypotheses.
pub fn decode_split(
    model: &Transformer,
    tokenizer: &SubwordTokenizer,
    text: &ParallelText,
    search: &SearchConfig,
    device: &Device,
    threads: usize,
) -> Result<Decoded> {
    let encoded = encode_for_inference(tokenizer, &text.pairs, model.max_len())?;
    let sources: Vec<Vec<u32>> = encoded.examples.iter().map(|e| e.src.clone()).collect();
    let started = std::time::Instant::now();
    let nbests = translate(model, &sources, search, device, 64, threads, |_| {});
    let seconds = started.elapsed().as_secs_f64();
    let mut hyps = vec![String::new(); text.pairs.len()];
    for (example, nbest) in encoded.examples.iter().zip(&nbests) {
        if let Some(best) = nbest.first() {
            hyps[example.index] = tokenizer.decode(&best.tokens)?;
        }
    }
    let refs = vec![text.pairs.iter().map(|p| p.tgt.clone()).collect::<Vec<_>>()];
    let bleu = corpus_bleu(&hyps, &refs, &BleuOptions::default())?;
    Ok(Decoded {
        encoded,
        nbests,
        hyps,
        refs,
        bleu,
        seconds,
    })
}

/// Evaluates `run` on `split` with `search`; writes `output` (JSON), the hypotheses next to it
/// (`.hyp.txt`) and the reliability diagrams (`-reliability.png/.svg`).
pub fn evaluate(
    run: &RunDir,
    split: &str,
    search: &SearchConfig,
    bins: usize,
    output: &Path,
    device: &Device,
    threads: usize,
) -> Result<EvalReport> {
    search.validate()?;
    let (config, tokenizer, model) = run.load_model(device)?;
    let split = &config.data.resolve_split(split)?;
    let text: ParallelText = config.data.load_split(split)?;
    if text.pairs.is_empty() {
        return Err(SweepError::EmptySplit(split.clone()));
    }
    let Decoded {
        encoded,
        nbests,
        hyps: all_hyps,
        refs,
        bleu,
        seconds: secs,
    } = decode_split(&model, &tokenizer, &text, search, device, threads)?;
    let (chrf, chrf_signature) = corpus_chrf(&all_hyps, &refs)?;
    let hyp_path = output.with_extension("hyp.txt");
    seqls_data::write::write_lines(&hyp_path, all_hyps.iter().map(String::as_str))?;
    let stats = sentence_stats(&all_hyps, &refs, &BleuOptions::default())?;
    seqls_data::write::write_atomic(
        &bleu_stats_file(output),
        serde_json::to_string(&stats)?.as_bytes(),
    )?;
    let stats = chrf_sentence_stats(&all_hyps, &refs)?;
    seqls_data::write::write_atomic(
        &chrf_stats_file(output),
        serde_json::to_string(&stats)?.as_bytes(),
    )?;

    let mut word_probs: Vec<Option<Vec<f64>>> = vec![None; all_hyps.len()];
    for (example, nbest) in encoded.examples.iter().zip(&nbests) {
        let best = &nbest[0];
        word_probs[example.index] = tokenizer
            .word_log_probs(&best.tokens, &best.token_log_probs)?
            .map(|words| words.iter().map(|lp| lp.exp()).collect());
    }
    seqls_data::write::write_atomic(
        &word_probs_file(output),
        seqls_compare::probs::format_word_probs(&word_probs).as_bytes(),
    )?;

    let (mut conf, mut correct) = (Vec::new(), Vec::new());
    for (example, nbest) in encoded.examples.iter().zip(&nbests) {
        let best = &nbest[0];
        let mut reference = example.tgt.clone();
        reference.push(EOS);
        correct.extend(aligned_matches(&best.tokens, &reference));
        conf.extend(best.token_log_probs.iter().map(|&lp| (lp as f64).exp()));
    }
    let inference = calibration(&conf, &correct, bins);
    let tf = teacher_forced_report(
        run,
        &config,
        &tokenizer,
        &model,
        split,
        &encoded.examples,
        bins,
        device,
    )?;

    let stem = output.with_extension("");
    let stem = stem.with_file_name(format!(
        "{}-reliability",
        stem.file_name().unwrap_or_default().to_string_lossy()
    ));
    let figure = ReliabilityGrid {
        panels: vec![
            Reliability {
                title: "teacher-forced, T = 1".into(),
                calibration: &tf.at_1.with_eos,
            },
            Reliability {
                title: format!("teacher-forced, T* = {:.3}", tf.fitted_temperature),
                calibration: &tf.at_fitted.with_eos,
            },
            Reliability {
                title: format!("inference, beam {}", search.beam_size),
                calibration: &inference,
            },
        ],
        columns: 3,
    };
    let figures = seqls_plot::save(&figure, &stem)?
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let report = EvalReport {
        split: split.to_string(),
        sentences: all_hyps.len(),
        search: search.clone(),
        length_ratio: bleu.ratio,
        chrf,
        chrf_signature,
        sentences_per_sec: encoded.examples.len() as f64 / secs.max(1e-9),
        inference,
        teacher_forced: tf.at_1,
        fitted_temperature: tf.fitted_temperature,
        teacher_forced_at_fitted_temperature: tf.at_fitted,
        oracle: tf.oracle,
        erasure: Some(tf.erasure),
        hypotheses_file: hyp_path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        figures,
        bleu,
    };
    seqls_data::write::write_atomic(output, serde_json::to_string_pretty(&report)?.as_bytes())?;
    Ok(report)
}

/// The per-sentence BLEU statistics of an evaluation (`eval-<split>-beam<K>.bleu-stats.json`, a list of
/// [`seqls_eval::SentenceStats`]): what the report's bootstrap needs, without the references.
pub fn bleu_stats_file(eval_file: &Path) -> std::path::PathBuf {
    eval_file.with_extension("bleu-stats.json")
}

/// The probability of each word of each hypothesis of an evaluation
/// (`eval-<split>-beam<K>.word-probs.txt`, see [`seqls_compare::probs`]), for the report page.
pub fn word_probs_file(eval_file: &Path) -> std::path::PathBuf {
    eval_file.with_extension("word-probs.txt")
}

/// The per-sentence chrF statistics of an evaluation (`eval-<split>-beam<K>.chrf-stats.json`, a list
/// of [`seqls_eval::ChrfStats`]).
pub fn chrf_stats_file(eval_file: &Path) -> std::path::PathBuf {
    eval_file.with_extension("chrf-stats.json")
}

impl EvalReport {
    /// Reads an evaluation written by [`evaluate`]; a missing or malformed field is an error naming
    /// the file.
    pub fn read(path: &Path) -> Result<EvalReport> {
        let text = std::fs::read_to_string(path).at(path.display())?;
        Ok(serde_json::from_str(&text).at(path.display())?)
    }
}
