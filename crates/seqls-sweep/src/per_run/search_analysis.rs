//! How search behaves for one trained run on one split (`seqls search-analysis`; the sweep's
//! `[sweep.search]`): beam search at every beam size under several rankings of the finished
//! hypotheses, measured against the model's own scores and, on a stated subset, against exact search.
//!
//! Per (beam size `K`, ranking) — one beam search per `K` answers for every ranking
//! ([`seqls_decode::beam_search_rankings`]):
//! - sacreBLEU (cased, 13a), chrF and the hypothesis/reference length ratio (13a tokens);
//! - `empty`: share of outputs with no token before `</s>`; `short`: share of outputs with fewer than
//!   half as many subword tokens as their reference;
//! - `mean_score`: mean unnormalised score `Σ log p` (nats) of the outputs;
//! - `empty_beats_output`: share of sentences where the empty translation, `log p(</s> | <s>, x)`,
//!   scores above the output; `reference_beats_output`: share where the reference does
//!   (teacher-forced, `</s>` included): an output below its reference is a search error by
//!   definition, whatever the optimum is;
//! - on the exact subset: `search_errors`, the share of sentences whose output scores below the best
//!   translation exact search found (a search error whether or not the optimum was proven).
//!
//! Exact search ([`seqls_decode::exact_search`]) runs on the first `exact_sentences` sentences, each
//! started from the best-scoring output of all the beam searches above (with a minimum length: of
//! those long enough, and of a beam search under that minimum); it reports how many optima
//! were proven, the cost, and the BLEU, length ratio and share of empty translations of the optima.
//! With `min_len_ratio > 0` it runs again with `</s>` forbidden before `⌈r · source tokens⌉` tokens
//! (Stahlberg & Byrne's control: is the empty or short optimum what the unconstrained search found?).
//!
//! Two controls at beam `control_beam` ([`Controls`]): the ranking tuned on the validation split
//! (the best BLEU over [`tuning_grid`]) applied to the test split, and decoding at the temperature
//! T* that minimises validation NLL (Müller et al.'s temperature-scaling comparison).

use crate::error::{Result, SweepError};
use burn::tensor::Device;
use seqls_data::corpus::encode_for_inference;
use seqls_data::{Batch, Example, ParallelText, SubwordTokenizer};
use seqls_decode::{
    ExactConfig, ExactOutcome, ExactResult, Hypothesis, LengthPenalty, SearchConfig,
};
use seqls_eval::{BleuOptions, corpus_bleu, corpus_chrf};
use seqls_model::{Translator, teacher_forced_scores};
use seqls_run::RunDir;
pub use seqls_run::SearchAnalysisConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// The measures of one (beam size, ranking).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchPoint {
    pub beam: usize,
    pub ranking: LengthPenalty,
    pub bleu: f64,
    pub chrf: f64,
    pub length_ratio: f64,
    pub empty: f64,
    pub short: f64,
    /// Mean `Σ log p` of the outputs (nats).
    pub mean_score: f64,
    pub empty_beats_output: f64,
    pub reference_beats_output: f64,
    /// On the exact subset: share of outputs scoring below exact search's best (`None`: no exact search).
    pub search_errors: Option<f64>,
    /// The hypotheses, next to the JSON.
    pub hypotheses_file: String,
}

/// Exact search on the subset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExactSummary {
    /// The first this many sentences of the split.
    pub sentences: usize,
    /// `</s>` forbidden before `⌈r · source tokens⌉` tokens (0: unconstrained).
    pub min_len_ratio: f64,
    pub max_expansions: u64,
    /// Optima proven (the rest hit the budget: their result is a lower bound).
    pub proven: usize,
    /// Sentences where exact search found a translation above the best beam output.
    pub improved: usize,
    pub mean_expansions: f64,
    pub max_expansions_used: u64,
    pub seconds: f64,
    /// BLEU, chrF and length ratio of the results on the subset.
    pub bleu: f64,
    pub chrf: f64,
    pub length_ratio: f64,
    /// Share of results that are the empty translation.
    pub empty: f64,
    /// Share of results shorter than half their reference (subword tokens).
    pub short: f64,
    pub hypotheses_file: String,
}

/// The two controls Müller et al.'s argument needs, at one beam size: does smoothing's effect on
/// beam search survive when each run gets its own best length penalty, and does post-hoc
/// calibration (temperature scaling) give an unsmoothed model the same effect?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Controls {
    pub beam: usize,
    /// Test BLEU and length ratio with the run's own ranking at T = 1: the point of comparison.
    pub default_bleu: f64,
    pub default_length_ratio: f64,
    /// The ranking of [`tuning_grid`] with the highest validation BLEU (ties: the first).
    pub tuned_ranking: LengthPenalty,
    pub tuned_valid_bleu: f64,
    /// Test BLEU and length ratio with the tuned ranking.
    pub tuned_bleu: f64,
    pub tuned_length_ratio: f64,
    /// The temperature minimising validation NLL (golden-section search, as `seqls eval`'s T*).
    pub fitted_temperature: f64,
    /// Test BLEU and length ratio decoding at T*, with the run's ranking.
    pub fitted_bleu: f64,
    pub fitted_length_ratio: f64,
}

/// The rankings the length-penalty control chooses from: `power-A` for A = 0, 0.2, …, 2 and
/// `gnmt-A` for A = 0.2, …, 2 (one beam search answers for all of them).
pub fn tuning_grid() -> Vec<LengthPenalty> {
    let exponents = (0..=10).map(|i| i as f64 / 5.0);
    exponents
        .clone()
        .map(LengthPenalty::Power)
        .chain(exponents.skip(1).map(LengthPenalty::Gnmt))
        .collect()
}

/// Everything `search-<split>.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchReport {
    pub split: String,
    pub sentences: usize,
    /// Beam search's length limits and temperature (the run's `[decode]`).
    pub search: SearchConfig,
    pub config: SearchAnalysisConfig,
    pub points: Vec<SearchPoint>,
    pub exact: Option<ExactSummary>,
    /// Exact search with the minimum length (when `min_len_ratio > 0`).
    pub exact_min_len: Option<ExactSummary>,
    /// The length-penalty and temperature controls (when `control_beam > 0`).
    pub controls: Option<Controls>,
    /// Wall-clock seconds of the beam searches and of exact search.
    pub beam_seconds: f64,
    pub exact_seconds: f64,
}

impl SearchReport {
    /// Reads `search-<split>.json`; a missing or malformed field is an error naming the file.
    pub fn read(path: &Path) -> Result<SearchReport> {
        use seqls_run::error::At;
        let text = std::fs::read_to_string(path).at(path.display())?;
        Ok(serde_json::from_str(&text).at(path.display())?)
    }
}

/// The file a run's search analysis of `split` is written to.
pub fn search_file(run: &RunDir, split: &str) -> std::path::PathBuf {
    run.root.join(format!("search-{split}.json"))
}

/// Per-sentence facts the measures compare outputs with.
struct References {
    /// Teacher-forced `Σ log p` of each reference (`</s>` included).
    scores: Vec<f64>,
    /// `log p(</s> | <s>, x)`: the score of the empty translation.
    empty_scores: Vec<f64>,
    /// Subword tokens of each reference (without `</s>`).
    lengths: Vec<usize>,
}

/// Teacher-forced `Σ log p` of each example's target (`</s>` included).
fn sum_scores(model: &seqls_model::Transformer, examples: &[Example], device: &Device) -> Vec<f64> {
    let mut out = vec![0.0; examples.len()];
    for (c, chunk) in examples.chunks(64).enumerate() {
        let refs: Vec<&Example> = chunk.iter().collect();
        let batch = Batch::from_examples(&refs);
        for (r, row) in teacher_forced_scores(model, &batch, 1.0, device)
            .into_iter()
            .enumerate()
        {
            out[c * 64 + r] = row.iter().map(|t| t.log_prob as f64).sum();
        }
    }
    out
}

/// Shares and means over one list of outputs (one per encoded example).
struct OutputStats {
    empty: f64,
    short: f64,
    mean_score: f64,
    empty_beats: f64,
    reference_beats: f64,
}

fn output_stats(outputs: &[Option<&Hypothesis>], refs: &References) -> OutputStats {
    let n = outputs.len().max(1) as f64;
    let share = |f: &dyn Fn(usize, &Hypothesis) -> bool| {
        outputs
            .iter()
            .enumerate()
            .filter(|(i, h)| h.is_some_and(|h| f(*i, h)))
            .count() as f64
            / n
    };
    OutputStats {
        empty: share(&|_, h| h.tokens.len() == 1),
        short: share(&|i, h| 2 * (h.tokens.len() - 1) < refs.lengths[i]),
        mean_score: outputs.iter().flatten().map(|h| h.score).sum::<f64>() / n,
        empty_beats: share(&|i, h| refs.empty_scores[i] > h.score),
        reference_beats: share(&|i, h| refs.scores[i] > h.score),
    }
}

/// Detokenised texts for every pair of the split (empty where a pair was not encoded).
fn texts(
    tokenizer: &SubwordTokenizer,
    pairs: usize,
    examples: &[Example],
    outputs: &[Option<&Hypothesis>],
) -> Result<Vec<String>> {
    let mut hyps = vec![String::new(); pairs];
    for (e, h) in examples.iter().zip(outputs) {
        if let Some(h) = h {
            hyps[e.index] = tokenizer.decode(&h.tokens)?;
        }
    }
    Ok(hyps)
}

/// Runs the analysis of `run` on `split` and writes `search-<split>.json` with the hypotheses of
/// every point in `search-<split>/` next to it.
pub fn analyse(
    run: &RunDir,
    split: &str,
    analysis: &SearchAnalysisConfig,
    device: &Device,
    threads: usize,
) -> Result<SearchReport> {
    analysis.validate()?;
    let (config, tokenizer, model) = run.load_model(device)?;
    let split = config.data.resolve_split(split)?;
    let text: ParallelText = config.data.load_split(&split)?;
    if text.pairs.is_empty() {
        return Err(SweepError::EmptySplit(split.clone()));
    }
    let search = SearchConfig {
        nbest: 1,
        ..config.decode.clone()
    };
    search.validate_for(model.max_output_len())?;
    let encoded = encode_for_inference(&tokenizer, &text.pairs, config.model.max_len)?;
    let examples = &encoded.examples;
    let sources: Vec<Vec<u32>> = examples.iter().map(|e| e.src.clone()).collect();
    let empty_targets: Vec<Example> = examples
        .iter()
        .map(|e| Example {
            tgt: vec![],
            ..e.clone()
        })
        .collect();
    let refs = References {
        scores: sum_scores(&model, examples, device),
        empty_scores: sum_scores(&model, &empty_targets, device),
        lengths: examples.iter().map(|e| e.tgt.len()).collect(),
    };
    let reference_stream = vec![text.pairs.iter().map(|p| p.tgt.clone()).collect::<Vec<_>>()];
    let dir = run.root.join(format!("search-{split}"));
    std::fs::create_dir_all(&dir)?;
    let translator = Translator::new(&model, device);

    // Beam search at every size; one search answers for every ranking.
    let started = Instant::now();
    let mut outputs: Vec<Vec<Vec<Hypothesis>>> = Vec::new(); // [beam][sentence][ranking]
    for &beam in &analysis.beams {
        let cfg = SearchConfig {
            beam_size: beam,
            ..search.clone()
        };
        outputs.push(translator.translate_rankings(
            &sources,
            &cfg,
            &analysis.rankings,
            64,
            threads,
            |_| {},
        ));
    }
    let beam_seconds = started.elapsed().as_secs_f64();

    // Exact search on the subset, from the best output of every beam search.
    let subset = analysis.exact_sentences.min(examples.len());
    let best_outputs: Vec<Option<Hypothesis>> = (0..subset)
        .map(|i| {
            outputs
                .iter()
                .flat_map(|per_beam| per_beam[i].iter())
                .max_by(|a, b| a.score.total_cmp(&b.score))
                .cloned()
        })
        .collect();
    let exact_run = |min_len_ratio: f64| {
        let exact = ExactConfig {
            max_expansions: analysis.max_expansions,
            time_limit: None,
            min_len_ratio,
        };
        let starts = (min_len_ratio == 0.0).then_some(best_outputs.as_slice());
        let started = Instant::now();
        let results = translator.exact(
            &sources[..subset],
            &search,
            &exact,
            starts,
            16,
            threads,
            |_| {},
        );
        (results, started.elapsed().as_secs_f64())
    };
    let exact = (subset > 0).then(|| exact_run(0.0));
    let exact_min_len =
        (subset > 0 && analysis.min_len_ratio > 0.0).then(|| exact_run(analysis.min_len_ratio));
    let exact_seconds = exact.iter().chain(&exact_min_len).map(|(_, s)| s).sum();

    let mut points = Vec::new();
    for (b, &beam) in analysis.beams.iter().enumerate() {
        for (r, &ranking) in analysis.rankings.iter().enumerate() {
            let best: Vec<Option<&Hypothesis>> = outputs[b].iter().map(|per| per.get(r)).collect();
            let hyps = texts(&tokenizer, text.pairs.len(), examples, &best)?;
            let file = format!("b{beam}-{}.hyp.txt", ranking.label());
            seqls_data::write::write_lines(&dir.join(&file), hyps.iter().map(String::as_str))?;
            let bleu = corpus_bleu(&hyps, &reference_stream, &BleuOptions::default())?;
            let (chrf, _) = corpus_chrf(&hyps, &reference_stream)?;
            let stats = output_stats(&best, &refs);
            let search_errors = exact.as_ref().map(|(results, _)| {
                let errors = results
                    .iter()
                    .zip(&best)
                    .filter(
                        |(e, h)| match (e.as_ref().and_then(|e| e.best.as_ref()), h) {
                            (Some(e), Some(h)) => e.score > h.score,
                            _ => false,
                        },
                    )
                    .count();
                errors as f64 / subset as f64
            });
            points.push(SearchPoint {
                beam,
                ranking,
                bleu: bleu.score,
                chrf,
                length_ratio: bleu.ratio,
                empty: stats.empty,
                short: stats.short,
                mean_score: stats.mean_score,
                empty_beats_output: stats.empty_beats,
                reference_beats_output: stats.reference_beats,
                search_errors,
                hypotheses_file: format!("search-{split}/{file}"),
            });
        }
    }
    let summarise = |(results, seconds): &(Vec<Option<ExactResult>>, f64),
                     ratio: f64|
     -> Result<ExactSummary> {
        let best: Vec<Option<&Hypothesis>> = results
            .iter()
            .map(|r| r.as_ref().and_then(|r| r.best.as_ref()))
            .collect();
        let subset_pairs = &text.pairs[..examples[..subset].last().map_or(0, |e| e.index + 1)];
        let hyps = texts(&tokenizer, subset_pairs.len(), &examples[..subset], &best)?;
        let file = if ratio == 0.0 {
            "exact.hyp.txt".to_string()
        } else {
            format!("exact-min-len-{ratio}.hyp.txt")
        };
        seqls_data::write::write_lines(&dir.join(&file), hyps.iter().map(String::as_str))?;
        let subset_refs = vec![
            subset_pairs
                .iter()
                .map(|p| p.tgt.clone())
                .collect::<Vec<_>>(),
        ];
        let bleu = corpus_bleu(&hyps, &subset_refs, &BleuOptions::default())?;
        let (chrf, _) = corpus_chrf(&hyps, &subset_refs)?;
        let stats = output_stats(&best, &refs);
        let done: Vec<&ExactResult> = results.iter().flatten().collect();
        let expansions: Vec<u64> = done.iter().map(|r| r.expansions).collect();
        Ok(ExactSummary {
            sentences: subset,
            min_len_ratio: ratio,
            max_expansions: analysis.max_expansions,
            proven: done
                .iter()
                .filter(|r| r.outcome == ExactOutcome::Proven)
                .count(),
            improved: done.iter().filter(|r| r.improved).count(),
            mean_expansions: expansions.iter().sum::<u64>() as f64 / subset.max(1) as f64,
            max_expansions_used: expansions.iter().copied().max().unwrap_or(0),
            seconds: *seconds,
            bleu: bleu.score,
            chrf,
            length_ratio: bleu.ratio,
            empty: stats.empty,
            short: stats.short,
            hypotheses_file: format!("search-{split}/{file}"),
        })
    };
    let controls = if analysis.control_beam > 0 {
        Some(controls(
            run,
            &config,
            &tokenizer,
            &model,
            &translator,
            &search,
            analysis.control_beam,
            (&text, examples, &sources),
            device,
            threads,
        )?)
    } else {
        None
    };
    let report = SearchReport {
        split: split.clone(),
        sentences: text.pairs.len(),
        search,
        config: analysis.clone(),
        points,
        exact: exact.as_ref().map(|r| summarise(r, 0.0)).transpose()?,
        exact_min_len: exact_min_len
            .as_ref()
            .map(|r| summarise(r, analysis.min_len_ratio))
            .transpose()?,
        controls,
        beam_seconds,
        exact_seconds,
    };
    seqls_data::write::write_atomic(
        &search_file(run, &split),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    Ok(report)
}

/// BLEU report of one list of outputs (one per example) on a split.
fn bleu_of(
    tokenizer: &SubwordTokenizer,
    text: &ParallelText,
    examples: &[Example],
    outputs: &[Option<&Hypothesis>],
) -> Result<seqls_eval::BleuReport> {
    let hyps = texts(tokenizer, text.pairs.len(), examples, outputs)?;
    let refs = vec![text.pairs.iter().map(|p| p.tgt.clone()).collect::<Vec<_>>()];
    Ok(corpus_bleu(&hyps, &refs, &BleuOptions::default())?)
}

/// Runs the two controls at beam `beam` (see [`Controls`]); `test` is the split's text, encoded
/// examples and sources.
#[allow(clippy::too_many_arguments)]
fn controls(
    run: &RunDir,
    config: &seqls_run::ExperimentConfig,
    tokenizer: &SubwordTokenizer,
    model: &seqls_model::Transformer,
    translator: &Translator,
    search: &SearchConfig,
    beam: usize,
    test: (&ParallelText, &[Example], &[Vec<u32>]),
    device: &Device,
    threads: usize,
) -> Result<Controls> {
    let (text, examples, sources) = test;
    let at_beam = SearchConfig {
        beam_size: beam,
        ..search.clone()
    };
    let decode = |sources: &[Vec<u32>], cfg: &SearchConfig, rankings: &[LengthPenalty]| {
        translator.translate_rankings(sources, cfg, rankings, 64, threads, |_| {})
    };
    let first = |outputs: &[Vec<Hypothesis>], r: usize| -> Vec<Option<Hypothesis>> {
        outputs.iter().map(|per| per.get(r).cloned()).collect()
    };
    let bleu = |outs: &[Option<Hypothesis>], text: &ParallelText, examples: &[Example]| {
        let refs: Vec<Option<&Hypothesis>> = outs.iter().map(Option::as_ref).collect();
        bleu_of(tokenizer, text, examples, &refs)
    };

    // The run's ranking at T = 1, and the tuning grid's best on validation applied to test.
    let grid = tuning_grid();
    let val_split = config.data.resolve_split("val")?;
    let val_text: ParallelText = config.data.load_split(&val_split)?;
    let val = encode_for_inference(tokenizer, &val_text.pairs, config.model.max_len)?;
    let val_sources: Vec<Vec<u32>> = val.examples.iter().map(|e| e.src.clone()).collect();
    let val_outputs = decode(&val_sources, &at_beam, &grid);
    let mut tuned = (0, f64::NEG_INFINITY);
    for r in 0..grid.len() {
        let b = bleu(&first(&val_outputs, r), &val_text, &val.examples)?.score;
        if b > tuned.1 {
            tuned = (r, b);
        }
    }
    let test_outputs = decode(sources, &at_beam, &[search.length_penalty, grid[tuned.0]]);
    let default = bleu(&first(&test_outputs, 0), text, examples)?;
    let tuned_test = bleu(&first(&test_outputs, 1), text, examples)?;

    // Temperature scaling: T* from validation NLL (as `seqls eval` fitted and cached it), then
    // decoding at T*.
    let fitted_temperature =
        crate::per_run::evaluate::run_fitted_temperature(run, model, &val.examples, device);
    let at_fitted = SearchConfig {
        temperature: fitted_temperature as f32,
        ..at_beam.clone()
    };
    let fitted = bleu(
        &first(&decode(sources, &at_fitted, &[search.length_penalty]), 0),
        text,
        examples,
    )?;
    Ok(Controls {
        beam,
        default_bleu: default.score,
        default_length_ratio: default.ratio,
        tuned_ranking: grid[tuned.0],
        tuned_valid_bleu: tuned.1,
        tuned_bleu: tuned_test.score,
        tuned_length_ratio: tuned_test.ratio,
        fitted_temperature,
        fitted_bleu: fitted.score,
        fitted_length_ratio: fitted.ratio,
    })
}
