//! The α × beam report of a sweep directory: `report.md`, `report.json`, `table.csv` and the figures
//! under `figures/` (PNG and SVG).
//!
//! Three steps: [`collect`] reads every finished run (its `metrics.json`, `log.jsonl` and
//! `eval-<split>-beam<K>.json` files, typed: a missing or malformed field is an error naming the
//! file); the tables give, per test split and averaged over the splits, each run's row and with
//! several seeds the mean ± standard deviation per α; the comparisons estimate each α against the
//! smallest one, and the change of the beam-search gain, over seeds (see [`seqls_eval::seeds`]);
//! the figures plot the means with the standard deviation over seeds as error bars.
//!
//! Everything is read from those files, except the penultimate-layer picture, which loads the models
//! of the smallest and the largest α (first seed); without the weights that figure is left as it is.

use crate::driver::Sweep;
use crate::error::{At, Result, SweepError, fail};
use crate::evaluate::{EvalReport, bleu_stats_file, chrf_stats_file};
use crate::penultimate;

use burn::tensor::Device;
use seqls_data::corpus::encode_pairs;
use seqls_eval::calibration::{Calibration, pool};
use seqls_eval::{
    BleuOptions, ChrfStats, SeedContrast, SentenceStats, Term, bleu_from_stats, chrf_of,
    chrf_seed_contrast, chrf_sentence_stats, seed_contrast, sentence_stats,
};
use seqls_plot::{Figure, LineChart, Reliability, ReliabilityGrid, Scatter, ScatterPanel, Series};
use seqls_run::{LogLine, RunDir, TrainSummary, ValidMetrics, read_log};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// Resamples of every bootstrap in the report, and the seed of their generator.
pub(crate) const BOOTSTRAP_SAMPLES: usize = 1000;
pub(crate) const BOOTSTRAP_SEED: u64 = 12345;
/// The split name of the rows averaged over the test splits.
const MEAN_OVER_SPLITS: &str = "mean over test sets";

/// One run's results on one split at one beam size.
#[derive(Debug, Clone, Serialize)]
pub struct BeamResult {
    pub beam: usize,
    pub bleu: f64,
    pub chrf: f64,
    pub length_ratio: f64,
    pub inference_ece: f64,
    pub sentences_per_sec: f64,
    pub hypotheses_file: String,
}

/// One run's results on one split.
#[derive(Debug, Clone, Serialize)]
pub struct SplitResult {
    pub split: String,
    pub test_nll: f64,
    pub test_accuracy: f64,
    pub ece: f64,
    pub mce: f64,
    pub adaptive_ece: f64,
    /// Teacher-forced ECE of `p(</s>)` at every position against whether the reference ends there;
    /// `None` for evaluations written before it was measured.
    pub eos_ece: Option<f64>,
    pub temperature: f64,
    pub ece_at_temperature: f64,
    pub oracle_mean_abs_gap: Option<f64>,
    pub oracle_ece: Option<f64>,
    /// Validation split: the distribution over the non-reference tokens ([`seqls_eval::erasure`]).
    pub erasure_entropy_ratio: Option<f64>,
    pub erasure_kl_from_uniform: Option<f64>,
    pub erasure_top5_mass: Option<f64>,
    pub beams: Vec<BeamResult>,
    #[serde(skip)]
    teacher_forced: Option<Calibration>,
    #[serde(skip)]
    teacher_forced_at_temperature: Option<Calibration>,
}

impl SplitResult {
    pub(crate) fn at(&self, beam: usize) -> Option<&BeamResult> {
        self.beams.iter().find(|b| b.beam == beam)
    }
}

/// Validation at the end of one epoch.
#[derive(Debug, Clone, Serialize)]
pub struct EpochResult {
    pub epoch: usize,
    pub nll: f64,
    pub greedy_bleu: Option<f64>,
    pub train_seconds: f64,
}

/// One finished run: one (α, seed).
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub alpha: f64,
    pub seed: u64,
    pub valid: Option<ValidMetrics>,
    pub train_seconds: f64,
    pub threads: usize,
    pub epochs: Vec<EpochResult>,
    /// One entry per test split with at least one evaluation, in the sweep's order; with several,
    /// followed by their mean ([`MEAN_OVER_SPLITS`]) when every split has been evaluated.
    pub splits: Vec<SplitResult>,
}

impl RunResult {
    pub(crate) fn split(&self, name: &str) -> Option<&SplitResult> {
        self.splits.iter().find(|s| s.split == name)
    }
}

fn read_split(run: &RunDir, split: &str, beams: &[usize]) -> Result<Option<SplitResult>> {
    let mut evals = Vec::new();
    for &beam in beams {
        let p = run.eval_file(split, beam);
        if p.exists() {
            evals.push(EvalReport::read(&p)?);
        }
    }
    let Some(first) = evals.first() else {
        return Ok(None);
    };
    let tf = &first.teacher_forced;
    Ok(Some(SplitResult {
        split: split.to_string(),
        test_nll: tf.nll,
        test_accuracy: tf.with_eos.accuracy,
        ece: tf.with_eos.ece,
        mce: tf.with_eos.mce,
        adaptive_ece: tf.with_eos.adaptive_ece,
        eos_ece: evals
            .iter()
            .find_map(|e| e.teacher_forced.eos.as_ref())
            .map(|c| c.ece),
        temperature: first.fitted_temperature,
        ece_at_temperature: first.teacher_forced_at_fitted_temperature.with_eos.ece,
        oracle_mean_abs_gap: first.oracle.as_ref().map(|o| o.mean_abs_gap),
        oracle_ece: first.oracle.as_ref().map(|o| o.ece),
        erasure_entropy_ratio: first.erasure.as_ref().map(|e| e.entropy_ratio),
        erasure_kl_from_uniform: first.erasure.as_ref().map(|e| e.kl_from_uniform),
        erasure_top5_mass: first.erasure.as_ref().map(|e| e.top5_mass),
        beams: evals
            .iter()
            .map(|e| BeamResult {
                beam: e.search.beam_size,
                bleu: e.bleu.score,
                chrf: e.chrf,
                length_ratio: e.length_ratio,
                inference_ece: e.inference.ece,
                sentences_per_sec: e.sentences_per_sec,
                hypotheses_file: e.hypotheses_file.clone(),
            })
            .collect(),
        teacher_forced: Some(tf.with_eos.clone()),
        teacher_forced_at_temperature: Some(
            first.teacher_forced_at_fitted_temperature.with_eos.clone(),
        ),
    }))
}

/// The mean of a run's split results (the beams every split has); `None` unless there are at least two.
fn mean_over_splits(splits: &[SplitResult]) -> Option<SplitResult> {
    if splits.len() < 2 {
        return None;
    }
    let mean =
        |f: &dyn Fn(&SplitResult) -> f64| splits.iter().map(f).sum::<f64>() / splits.len() as f64;
    let mean_opt = |f: &dyn Fn(&SplitResult) -> Option<f64>| {
        let xs: Option<Vec<f64>> = splits.iter().map(f).collect();
        xs.map(|v| v.iter().sum::<f64>() / v.len() as f64)
    };
    let beams = splits[0]
        .beams
        .iter()
        .filter_map(|b| {
            let all: Option<Vec<&BeamResult>> = splits.iter().map(|s| s.at(b.beam)).collect();
            let all = all?;
            let m = |f: fn(&BeamResult) -> f64| {
                all.iter().map(|x| f(x)).sum::<f64>() / all.len() as f64
            };
            Some(BeamResult {
                beam: b.beam,
                bleu: m(|x| x.bleu),
                chrf: m(|x| x.chrf),
                length_ratio: m(|x| x.length_ratio),
                inference_ece: m(|x| x.inference_ece),
                sentences_per_sec: m(|x| x.sentences_per_sec),
                hypotheses_file: String::new(),
            })
        })
        .collect();
    Some(SplitResult {
        split: MEAN_OVER_SPLITS.into(),
        test_nll: mean(&|s| s.test_nll),
        test_accuracy: mean(&|s| s.test_accuracy),
        ece: mean(&|s| s.ece),
        mce: mean(&|s| s.mce),
        adaptive_ece: mean(&|s| s.adaptive_ece),
        eos_ece: mean_opt(&|s| s.eos_ece),
        temperature: mean(&|s| s.temperature),
        ece_at_temperature: mean(&|s| s.ece_at_temperature),
        oracle_mean_abs_gap: mean_opt(&|s| s.oracle_mean_abs_gap),
        oracle_ece: mean_opt(&|s| s.oracle_ece),
        erasure_entropy_ratio: mean_opt(&|s| s.erasure_entropy_ratio),
        erasure_kl_from_uniform: mean_opt(&|s| s.erasure_kl_from_uniform),
        erasure_top5_mass: mean_opt(&|s| s.erasure_top5_mass),
        beams,
        teacher_forced: None,
        teacher_forced_at_temperature: None,
    })
}

/// Reads every finished run of the sweep (a run with `metrics.json` and at least one evaluation).
pub fn collect(sweep: &Sweep) -> Result<Vec<RunResult>> {
    let mut runs = Vec::new();
    for job in sweep.trainings() {
        if let Some(r) = read_run(
            sweep,
            &job.run,
            job.alpha,
            job.seed,
            &sweep.config.sweep.beams,
        )? {
            runs.push(r);
        }
    }
    Ok(runs)
}

/// One finished run directory with its evaluations at `beams`; `None` when it has not finished
/// training or has no evaluation yet.
pub(crate) fn read_run(
    sweep: &Sweep,
    run: &RunDir,
    alpha: f64,
    seed: u64,
    beams: &[usize],
) -> Result<Option<RunResult>> {
    if !run.metrics().exists() {
        return Ok(None);
    }
    let summary = TrainSummary::read(&run.metrics())?;
    let mut splits = Vec::new();
    for split in &sweep.test_splits {
        if let Some(s) = read_split(run, split, beams)? {
            splits.push(s);
        }
    }
    if splits.is_empty() {
        return Ok(None);
    }
    if splits.len() == sweep.test_splits.len()
        && let Some(mean) = mean_over_splits(&splits)
    {
        splits.push(mean);
    }
    let epochs = read_log(&run.log())?
        .into_iter()
        .filter_map(|line| match line {
            LogLine::Valid {
                epoch,
                metrics,
                greedy_bleu,
                train_seconds,
                ..
            } => Some(EpochResult {
                epoch,
                nll: metrics.nll,
                greedy_bleu,
                train_seconds,
            }),
            LogLine::Train { .. } => None,
        })
        .collect();
    Ok(Some(RunResult {
        alpha,
        seed,
        valid: summary.final_valid,
        train_seconds: summary.train_seconds,
        threads: summary.threads,
        epochs,
        splits,
    }))
}

/// The value of a column for one run on one split.
type CellValue = Box<dyn Fn(&RunResult, &SplitResult) -> Option<f64>>;

/// A column of the run tables.
struct Column {
    header: String,
    decimals: usize,
    /// Printed with a sign (differences).
    signed: bool,
    value: CellValue,
}

impl Column {
    fn new(
        header: impl Into<String>,
        decimals: usize,
        value: impl Fn(&RunResult, &SplitResult) -> Option<f64> + 'static,
    ) -> Column {
        Column {
            header: header.into(),
            decimals,
            signed: false,
            value: Box::new(value),
        }
    }

    fn format(&self, v: Option<f64>) -> String {
        match v {
            Some(v) if v.is_finite() && self.signed => format!("{v:+.d$}", d = self.decimals),
            Some(v) if v.is_finite() => format!("{v:.d$}", d = self.decimals),
            _ => "–".into(),
        }
    }
}

fn columns(beams: &[usize], compare: usize) -> Vec<Column> {
    let mut cols = vec![
        Column::new("valid NLL", 4, |r, _| r.valid.as_ref().map(|v| v.nll)),
        Column::new("valid ppl", 2, |r, _| {
            r.valid.as_ref().map(|v| v.perplexity)
        }),
        Column::new("valid acc %", 2, |r, _| {
            r.valid.as_ref().map(|v| 100.0 * v.accuracy)
        }),
        Column::new("test NLL", 4, |_, s| Some(s.test_nll)),
        Column::new("ECE", 4, |_, s| Some(s.ece)),
        Column::new("MCE", 4, |_, s| Some(s.mce)),
        Column::new("adaptive ECE", 4, |_, s| Some(s.adaptive_ece)),
        Column::new("</s> ECE", 4, |_, s| s.eos_ece),
        Column::new("T*", 3, |_, s| Some(s.temperature)),
        Column::new("ECE@T*", 4, |_, s| Some(s.ece_at_temperature)),
    ];
    for &b in beams {
        cols.push(Column::new(format!("BLEU b{b}"), 2, move |_, s| {
            s.at(b).map(|x| x.bleu)
        }));
    }
    if compare != 1 && beams.contains(&1) {
        let mut gain = Column::new(format!("Δ b{compare}−b1"), 2, move |_, s| {
            Some(s.at(compare)?.bleu - s.at(1)?.bleu)
        });
        gain.signed = true;
        cols.push(gain);
    }
    if beams.contains(&compare) {
        cols.push(Column::new(format!("chrF b{compare}"), 2, move |_, s| {
            s.at(compare).map(|x| x.chrf)
        }));
    }
    for &b in beams {
        cols.push(Column::new(format!("len b{b}"), 3, move |_, s| {
            s.at(b).map(|x| x.length_ratio)
        }));
    }
    cols.push(Column::new(
        format!("inference ECE b{compare}"),
        4,
        move |_, s| s.at(compare).map(|x| x.inference_ece),
    ));
    cols.push(Column::new("H(q)/ln(K−1)", 4, |_, s| {
        s.erasure_entropy_ratio
    }));
    cols.push(Column::new("KL(q‖u)", 3, |_, s| {
        s.erasure_kl_from_uniform
    }));
    cols.push(Column::new("top-5 q", 3, |_, s| s.erasure_top5_mass));
    cols.push(Column::new("oracle gap", 4, |_, s| s.oracle_mean_abs_gap));
    cols.push(Column::new("oracle ECE", 4, |_, s| s.oracle_ece));
    cols.push(Column::new("train s", 0, |r, _| Some(r.train_seconds)));
    cols
}

/// Mean and sample standard deviation (0 for one value).
pub(crate) fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// The runs of each α (in the sweep's order) that have results on `split`.
fn by_alpha<'a>(
    alphas: &[f64],
    runs: &'a [RunResult],
    split: &str,
) -> Vec<(f64, Vec<(&'a RunResult, &'a SplitResult)>)> {
    alphas
        .iter()
        .map(|&a| {
            let group = runs
                .iter()
                .filter(|r| r.alpha == a)
                .filter_map(|r| Some((r, r.split(split)?)))
                .collect();
            (a, group)
        })
        .filter(|(_, g): &(f64, Vec<_>)| !g.is_empty())
        .collect()
}

/// The tables of one split: mean ± std per α (with several seeds), then one row per run. Appends the
/// rows to `csv`.
fn split_tables(
    md: &mut String,
    csv: &mut String,
    sweep: &Sweep,
    runs: &[RunResult],
    split: &str,
    cols: &[&Column],
) -> Result<()> {
    let groups = by_alpha(&sweep.config.sweep.alphas, runs, split);
    if groups.iter().any(|(_, g)| g.len() > 1) {
        write!(md, "| α | seeds |")?;
        for c in cols {
            write!(md, " {} |", c.header)?;
        }
        writeln!(md, "\n|{}", "---|".repeat(cols.len() + 2))?;
        for (alpha, group) in &groups {
            write!(md, "| {alpha} | {} |", group.len())?;
            for c in cols {
                let xs: Vec<f64> = group.iter().filter_map(|(r, s)| (c.value)(r, s)).collect();
                if xs.is_empty() {
                    write!(md, " – |")?;
                } else {
                    let (m, s) = mean_std(&xs);
                    write!(md, " {} ± {s:.d$} |", c.format(Some(m)), d = c.decimals)?;
                }
            }
            writeln!(md)?;
        }
        writeln!(md, "\nMean ± standard deviation over seeds. Per run:\n")?;
    }
    write!(md, "| α | seed |")?;
    for c in cols {
        write!(md, " {} |", c.header)?;
    }
    writeln!(md, " threads |\n|{}", "---|".repeat(cols.len() + 3))?;
    for (_, group) in &groups {
        for (r, s) in group {
            write!(md, "| {} | {} |", r.alpha, r.seed)?;
            write!(csv, "{split},{},{}", r.alpha, r.seed)?;
            for c in cols {
                let v = (c.value)(r, s);
                write!(md, " {} |", c.format(v))?;
                match v {
                    Some(v) if v.is_finite() => write!(csv, ",{v:.d$}", d = c.decimals + 2)?,
                    _ => csv.push(','),
                }
            }
            writeln!(md, " {} |", r.threads)?;
            writeln!(csv, ",{}", r.threads)?;
        }
    }
    Ok(())
}

/// A contrast estimated for the report, with what it compares.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub split: String,
    /// `bleu` (α against the baseline α at `beam`) or `beam-gain` (change of BLEU(`beam`) − BLEU(1)).
    pub kind: String,
    pub alpha: f64,
    pub baseline_alpha: f64,
    pub beam: usize,
    pub seeds: Vec<u64>,
    /// The BLEU contrast (the one the p-values, the adjustment and the Findings' verbs follow).
    pub contrast: SeedContrast,
    /// The same contrast in chrF, on the same resamples.
    pub chrf: SeedContrast,
    /// The study's declared primary contrast (`sweep.primary`): reported without adjustment.
    pub primary: bool,
    /// The bootstrap p-value Holm-adjusted over every non-primary comparison of the report; `None`
    /// for the primary contrast.
    pub holm_p_value: Option<f64>,
}

/// The per-sentence statistics of one evaluation, of both metrics the comparisons report.
#[derive(Debug, Clone)]
pub(crate) struct EvalStats {
    pub bleu: Vec<SentenceStats>,
    pub chrf: Vec<ChrfStats>,
}

/// Reads the statistics cached in `cache`, or computes them with `compute` (from the hypotheses and the
/// references) and caches them; either way they must give the evaluation's own corpus score `expected`
/// (`score` of every sentence), or the cache is stale and that is an error naming it.
fn cached_stats<S: Serialize + serde::de::DeserializeOwned>(
    cache: &Path,
    compute: impl FnOnce() -> Result<Vec<S>>,
    score: impl Fn(&[S], &[usize]) -> f64,
    expected: f64,
) -> Result<Vec<S>> {
    let stats: Vec<S> = if cache.exists() {
        let text = std::fs::read_to_string(cache).at(cache.display())?;
        serde_json::from_str(&text).at(cache.display())?
    } else {
        let stats = compute()?;
        seqls_data::read::write_atomic(cache, serde_json::to_string(&stats)?.as_bytes())?;
        stats
    };
    let all: Vec<usize> = (0..stats.len()).collect();
    let got = score(&stats, &all);
    if (got - expected).abs() > 1e-6 {
        fail!(
            "{}: these statistics give {got:.4}, but the evaluation reports {expected:.4} (stale; delete the file \
             to recompute it)",
            cache.display()
        );
    }
    Ok(stats)
}

/// The per-sentence BLEU and chrF statistics of the runs of `group` at `beam` on `split`, by seed:
/// read from the caches next to each evaluation, or computed from its hypotheses and the references
/// (loaded once into `refs`) and cached.
pub(crate) fn sentence_stats_of(
    sweep: &Sweep,
    group: &[(u64, RunDir, &SplitResult)],
    split: &str,
    beam: usize,
    refs: &mut Option<Vec<Vec<String>>>,
) -> Result<Vec<(u64, EvalStats)>> {
    let mut out = Vec::new();
    for (seed, run, s) in group {
        let Some(b) = s.at(beam) else { continue };
        let eval = run.eval_file(split, beam);
        let hyp_path = run.root.join(&b.hypotheses_file);
        let mut texts = || -> Result<(Vec<String>, Vec<Vec<String>>)> {
            if refs.is_none() {
                let text = sweep.config.data.load_split(split)?;
                *refs = Some(vec![text.pairs.into_iter().map(|p| p.tgt).collect()]);
            }
            let hyps = seqls_data::read::read_lines(&hyp_path)?;
            // Cannot fail: `refs` was filled just above.
            Ok((hyps, refs.clone().expect("references loaded")))
        };
        let options = BleuOptions::default();
        let bleu = cached_stats(
            &bleu_stats_file(&eval),
            || {
                let (hyps, refs) = texts()?;
                sentence_stats(&hyps, &refs, &options).at(hyp_path.display())
            },
            // Cannot fail: the default options are valid.
            |all, idx| bleu_from_stats(all, idx, &options).expect("default BLEU options"),
            b.bleu,
        )?;
        let chrf = cached_stats(
            &chrf_stats_file(&eval),
            || {
                let (hyps, refs) = texts()?;
                chrf_sentence_stats(&hyps, &refs).at(hyp_path.display())
            },
            chrf_of,
            b.chrf,
        )?;
        out.push((*seed, EvalStats { bleu, chrf }));
    }
    Ok(out)
}

/// A contrast in BLEU and in chrF, on the same resamples.
#[derive(Debug, Clone, Serialize)]
pub struct MetricContrasts {
    pub bleu: SeedContrast,
    pub chrf: SeedContrast,
}

/// Both metrics' contrast of `terms` (weight, statistics per seed in the same seed order).
pub(crate) fn contrasts(terms: &[(f64, Vec<&EvalStats>)]) -> Result<MetricContrasts> {
    let bleu: Vec<Term> = terms
        .iter()
        .map(|(w, per_seed)| Term {
            weight: *w,
            stats: per_seed.iter().map(|s| s.bleu.as_slice()).collect(),
        })
        .collect();
    let chrf: Vec<Term<ChrfStats>> = terms
        .iter()
        .map(|(w, per_seed)| Term {
            weight: *w,
            stats: per_seed.iter().map(|s| s.chrf.as_slice()).collect(),
        })
        .collect();
    Ok(MetricContrasts {
        bleu: seed_contrast(&bleu, &BleuOptions::default(), BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED)?,
        chrf: chrf_seed_contrast(&chrf, BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED)?,
    })
}

/// One term of a contrast: weight, beam size, and whether it is the baseline α's.
type ContrastTerm = (f64, usize, bool);

/// Each α against the smallest α at every beam size, and the change of the gain of beam
/// `compare_beam` over greedy, on `split`, over the seeds both have.
fn comparisons(sweep: &Sweep, runs: &[RunResult], split: &str) -> Result<Vec<Comparison>> {
    let groups = by_alpha(&sweep.config.sweep.alphas, runs, split);
    let Some(((base_alpha, base), others)) = groups
        .iter()
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|b| (b, groups.iter().filter(|g| g.0 != b.0).collect::<Vec<_>>()))
    else {
        return Ok(Vec::new());
    };
    let mut refs = None;
    let compare = sweep.config.sweep.compare_beam;
    let mut out = Vec::new();
    for (alpha, group) in others {
        let mut kinds: Vec<(String, usize, Vec<ContrastTerm>)> = sweep
            .config
            .sweep
            .beams
            .iter()
            .map(|&b| {
                (
                    "bleu".to_string(),
                    b,
                    vec![(1.0, b, false), (-1.0, b, true)],
                )
            })
            .collect();
        if compare != 1 && sweep.config.sweep.beams.contains(&1) {
            kinds.push((
                "beam-gain".into(),
                compare,
                vec![
                    (1.0, compare, false),
                    (-1.0, 1, false),
                    (-1.0, compare, true),
                    (1.0, 1, true),
                ],
            ));
        }
        for (kind, beam, terms) in kinds {
            // Sentence statistics per term, restricted to the seeds every term has.
            let mut per_term = Vec::new();
            for &(w, b, is_base) in &terms {
                let runs = if is_base { base } else { group };
                let runs: Vec<(u64, RunDir, &SplitResult)> = runs
                    .iter()
                    .map(|(r, sp)| (r.seed, sweep.run_dir(r.alpha, r.seed), *sp))
                    .collect();
                per_term.push((w, sentence_stats_of(sweep, &runs, split, b, &mut refs)?));
            }
            let mut seeds: Vec<u64> = per_term[0].1.iter().map(|(s, _)| *s).collect();
            seeds.retain(|s| per_term.iter().all(|(_, h)| h.iter().any(|(t, _)| t == s)));
            if seeds.is_empty() {
                continue;
            }
            let term_refs: Vec<(f64, Vec<&EvalStats>)> = per_term
                .iter()
                .map(|(w, h)| {
                    let per_seed = seeds
                        .iter()
                        .filter_map(|s| h.iter().find(|(t, _)| t == s))
                        .map(|(_, x)| x)
                        .collect();
                    (*w, per_seed)
                })
                .collect();
            let MetricContrasts { bleu: contrast, chrf } = contrasts(&term_refs)?;
            out.push(Comparison {
                split: split.to_string(),
                kind,
                alpha: *alpha,
                baseline_alpha: *base_alpha,
                beam,
                seeds,
                contrast,
                chrf,
                primary: false,
                holm_p_value: None,
            });
        }
    }
    Ok(out)
}

/// The header cells matching [`contrast_cells`].
pub(crate) const CONTRAST_HEADER: &str = "Δ | Δ per seed | 95% CI (crossed bootstrap) | p (bootstrap) | p (t-test, df) | p (sign flip) | smallest detectable (bootstrap / t-test)";

/// The cells `Δ | per seed | [CI] | p (bootstrap) | p (t-test, df) | p (sign flip) | MDE` of a
/// contrast's table row.
pub(crate) fn contrast_cells(c: &SeedContrast) -> String {
    let per_seed: Vec<String> = c.per_seed.iter().map(|d| format!("{d:+.2}")).collect();
    let t_p = c.t_test.as_ref().map_or("–".to_string(), |t| {
        format!("{:.3} ({})", t.p_value, t.degrees_of_freedom)
    });
    let flip = c.sign_flip_p.map_or("–".to_string(), |p| format!("{p:.3}"));
    let mde = format!(
        "{:.2} / {}",
        c.min_detectable_bootstrap,
        c.min_detectable
            .map_or("–".to_string(), |m| format!("{m:.2}"))
    );
    format!(
        "{:+.2} | {} | [{:+.2}, {:+.2}] | {:.4} | {t_p} | {flip} | {mde}",
        c.delta,
        per_seed.join(", "),
        c.ci.0,
        c.ci.1,
        c.p_value
    )
}

/// The header cell matching [`chrf_cell`].
pub(crate) const CHRF_HEADER: &str = "Δ chrF [95% CI]";

/// The chrF difference of a contrast with its crossed-bootstrap interval (same resamples as BLEU's).
pub(crate) fn chrf_cell(c: &SeedContrast) -> String {
    format!("{:+.2} [{:+.2}, {:+.2}]", c.delta, c.ci.0, c.ci.1)
}

/// The p-value cell of a comparison: Holm-adjusted, or marked as the primary contrast.
fn adjusted_cell(c: &Comparison) -> String {
    match c.holm_p_value {
        Some(p) => format!("{p:.4}"),
        None => "primary".into(),
    }
}

fn comparison_tables(md: &mut String, split: &str, comparisons: &[Comparison]) -> Result<()> {
    let of_split: Vec<&Comparison> = comparisons.iter().filter(|c| c.split == split).collect();
    let Some(first) = of_split.first() else {
        return Ok(());
    };
    writeln!(
        md,
        "\n**Each α against α = {} on {split}** (BLEU difference, and chrF's on the same resamples; mean over the seeds both have):\n",
        first.baseline_alpha
    )?;
    writeln!(
        md,
        "| α | beam | seeds | {CONTRAST_HEADER} | p (Holm) | {CHRF_HEADER} |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for c in of_split.iter().filter(|c| c.kind == "bleu") {
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            c.alpha,
            c.beam,
            c.seeds.len(),
            contrast_cells(&c.contrast),
            adjusted_cell(c),
            chrf_cell(&c.chrf)
        )?;
    }
    let gains: Vec<&&Comparison> = of_split.iter().filter(|c| c.kind == "beam-gain").collect();
    if let Some(g) = gains.first() {
        writeln!(
            md,
            "\n**Does smoothing change the gain of beam search?** Δ(b{b} − b1) of each α minus that of α = {}, on {split}:\n",
            g.baseline_alpha,
            b = g.beam
        )?;
        writeln!(
            md,
            "| α | seeds | Δ(b{b} − b1) change: {CONTRAST_HEADER} | p (Holm) | {CHRF_HEADER} |\n|---|---|---|---|---|---|---|---|---|---|---|",
            b = g.beam
        )?;
        for c in gains {
            writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                c.alpha,
                c.seeds.len(),
                contrast_cells(&c.contrast),
                adjusted_cell(c),
                chrf_cell(&c.chrf)
            )?;
        }
    }
    Ok(())
}

/// The figures directory of a report and what has been written into it.
pub(crate) struct FigureDir {
    pub(crate) dir: std::path::PathBuf,
    /// (title, path stem relative to the sweep directory) per figure.
    pub(crate) written: Vec<(String, String)>,
}

impl FigureDir {
    pub(crate) fn save(&mut self, name: &str, title: &str, figure: &impl Figure) -> Result<()> {
        seqls_plot::save(figure, &self.dir.join(name))?;
        self.written
            .push((title.to_string(), format!("figures/{name}")));
        Ok(())
    }
}

/// One line per α through `(x, mean over seeds)` with the standard deviation as error bars.
fn mean_series(
    groups: &[(f64, Vec<(&RunResult, &SplitResult)>)],
    xs: &[f64],
    value: &dyn Fn(&RunResult, &SplitResult, f64) -> Option<f64>,
) -> Vec<Series> {
    groups
        .iter()
        .map(|(alpha, group)| {
            let mut s = Series::new(format!("α = {alpha}"), Vec::new());
            for &x in xs {
                let ys: Vec<f64> = group.iter().filter_map(|(r, sp)| value(r, sp, x)).collect();
                if !ys.is_empty() {
                    let (m, sd) = mean_std(&ys);
                    s.points.push((x, m));
                    s.errors.push(sd);
                }
            }
            s
        })
        .collect()
}

fn chart(title: &str, x: &str, y: &str, series: Vec<Series>, log2_x: bool) -> LineChart {
    LineChart {
        title: title.into(),
        x_label: x.into(),
        y_label: y.into(),
        series,
        log2_x,
    }
}

/// Writes the figures of `runs` into `SWEEP/figures`; returns (title, file stem) per figure.
fn write_figures(
    sweep: &Sweep,
    runs: &[RunResult],
    device: &Device,
) -> Result<Vec<(String, String)>> {
    let mut figures = FigureDir {
        dir: sweep.dir.join("figures"),
        written: Vec::new(),
    };
    std::fs::create_dir_all(&figures.dir).at(figures.dir.display())?;
    let finished_seeds: std::collections::BTreeSet<u64> = runs.iter().map(|r| r.seed).collect();
    let seeds = if finished_seeds.len() > 1 {
        format!(", mean ± std over {} seeds", finished_seeds.len())
    } else {
        String::new()
    };
    beam_figures(&mut figures, sweep, runs, &seeds)?;
    alpha_figures(&mut figures, sweep, runs, &seeds)?;
    let first_seed: Vec<&RunResult> = runs
        .iter()
        .filter(|r| r.seed == sweep.config.sweep.seeds[0])
        .collect();
    epoch_figures(&mut figures, sweep, &first_seed)?;
    reliability_figure(&mut figures, sweep, runs, finished_seeds.len() > 1)?;
    penultimate(&mut figures, sweep, &first_seed, device)?;
    Ok(figures.written)
}

/// BLEU against beam size per test split, one line per α, and the length ratio on the first split.
fn beam_figures(
    figures: &mut FigureDir,
    sweep: &Sweep,
    runs: &[RunResult],
    seeds: &str,
) -> Result<()> {
    let grid = &sweep.config.sweep;
    let beams: Vec<f64> = grid.beams.iter().map(|&b| b as f64).collect();
    let alphas = &grid.alphas;
    for split in &sweep.test_splits {
        let groups = by_alpha(alphas, runs, split);
        let c = chart(
            &format!("{split}: BLEU vs beam size{seeds}"),
            "beam size",
            "BLEU",
            mean_series(&groups, &beams, &|_, s, b| s.at(b as usize).map(|x| x.bleu)),
            true,
        );
        figures.save(
            &format!("bleu-vs-beam-{split}"),
            &format!("{split}: BLEU vs beam size, one line per α{seeds}"),
            &c,
        )?;
    }
    let primary = &sweep.test_splits[0];
    let groups = by_alpha(alphas, runs, primary);
    let c = chart(
        &format!("{primary}: length ratio (hyp/ref) vs beam size"),
        "beam size",
        "length ratio",
        mean_series(&groups, &beams, &|_, s, b| {
            s.at(b as usize).map(|x| x.length_ratio)
        }),
        true,
    );
    figures.save(
        "length-ratio-vs-beam",
        &format!("{primary}: hypothesis/reference length ratio vs beam size (length bias){seeds}"),
        &c,
    )?;
    Ok(())
}

/// ECE and BLEU against α on the first split, mean ± std over seeds.
fn alpha_figures(
    figures: &mut FigureDir,
    sweep: &Sweep,
    runs: &[RunResult],
    seeds: &str,
) -> Result<()> {
    let grid = &sweep.config.sweep;
    let primary = &sweep.test_splits[0];
    let groups = by_alpha(&grid.alphas, runs, primary);
    // Lines over α: one series per measure, mean ± std over seeds.
    let over_alpha = |label: String, f: &dyn Fn(&RunResult, &SplitResult) -> Option<f64>| {
        let mut s = Series::new(label, Vec::new());
        for (alpha, group) in &groups {
            let ys: Vec<f64> = group.iter().filter_map(|(r, sp)| f(r, sp)).collect();
            if !ys.is_empty() {
                let (m, sd) = mean_std(&ys);
                s.points.push((*alpha, m));
                s.errors.push(sd);
            }
        }
        s
    };
    let compare = grid.compare_beam;
    let c = chart(
        &format!("{primary}: calibration vs α"),
        "α",
        "ECE",
        vec![
            over_alpha("ECE (teacher-forced)".into(), &|_, s| Some(s.ece)),
            over_alpha("ECE at T*".into(), &|_, s| Some(s.ece_at_temperature)),
            over_alpha(format!("inference ECE (beam {compare})"), &|_, s| {
                s.at(compare).map(|b| b.inference_ece)
            }),
        ],
        false,
    );
    figures.save("ece-vs-alpha", &format!("{primary}: ECE vs α{seeds}"), &c)?;
    let c = chart(
        &format!("{primary}: BLEU vs α"),
        "α",
        "BLEU",
        grid.beams
            .iter()
            .map(|&k| over_alpha(format!("beam {k}"), &|_, s| s.at(k).map(|b| b.bleu)))
            .collect(),
        false,
    );
    figures.save(
        "bleu-vs-alpha",
        &format!("{primary}: BLEU vs α, one line per beam size{seeds}"),
        &c,
    )?;
    Ok(())
}

/// Validation NLL (and greedy BLEU, where logged) per epoch of the first seed's runs.
fn epoch_figures(figures: &mut FigureDir, sweep: &Sweep, first_seed: &[&RunResult]) -> Result<()> {
    let grid = &sweep.config.sweep;
    let per_epoch = |f: fn(&EpochResult) -> Option<f64>| -> Vec<Series> {
        first_seed
            .iter()
            .map(|r| {
                Series::new(
                    format!("α = {}", r.alpha),
                    r.epochs
                        .iter()
                        .filter_map(|e| Some((e.epoch as f64, f(e)?)))
                        .collect(),
                )
            })
            .collect()
    };
    let c = chart(
        "Validation NLL per epoch",
        "epoch",
        "NLL (nats/token)",
        per_epoch(|e| Some(e.nll)),
        false,
    );
    figures.save(
        "valid-nll-per-epoch",
        &format!(
            "Validation NLL per epoch (learning speed; seed {})",
            grid.seeds[0]
        ),
        &c,
    )?;
    if first_seed
        .iter()
        .any(|r| r.epochs.iter().any(|e| e.greedy_bleu.is_some()))
    {
        let c = chart(
            "Validation BLEU (greedy) per epoch",
            "epoch",
            "BLEU",
            per_epoch(|e| e.greedy_bleu),
            false,
        );
        figures.save(
            "valid-bleu-per-epoch",
            &format!("Greedy validation BLEU per epoch (seed {})", grid.seeds[0]),
            &c,
        )?;
    }
    Ok(())
}

/// Teacher-forced reliability diagrams per α on the first split (tokens of all seeds pooled), and
/// α = 0 after temperature scaling.
fn reliability_figure(
    figures: &mut FigureDir,
    sweep: &Sweep,
    runs: &[RunResult],
    several_seeds: bool,
) -> Result<()> {
    let primary = &sweep.test_splits[0];
    let groups = by_alpha(&sweep.config.sweep.alphas, runs, primary);
    // Reliability diagrams pooled over seeds.
    let pooled: Vec<(String, Calibration)> = groups
        .iter()
        .filter_map(|(alpha, group)| {
            let parts: Vec<&Calibration> = group
                .iter()
                .filter_map(|(_, s)| s.teacher_forced.as_ref())
                .collect();
            Some((format!("α = {alpha}"), pool(&parts)?))
        })
        .collect();
    let mut panels: Vec<(String, Calibration)> = pooled;
    if let Some((_, group)) = groups.iter().find(|(a, _)| *a == 0.0) {
        let parts: Vec<&Calibration> = group
            .iter()
            .filter_map(|(_, s)| s.teacher_forced_at_temperature.as_ref())
            .collect();
        let (t, _) = mean_std(&group.iter().map(|(_, s)| s.temperature).collect::<Vec<_>>());
        if let Some(cal) = pool(&parts) {
            panels.push((format!("α = 0 at T* (mean {t:.3})"), cal));
        }
    }
    let grid_figure = ReliabilityGrid {
        columns: panels.len().clamp(1, 4),
        panels: panels
            .iter()
            .map(|(title, calibration)| Reliability {
                title: title.clone(),
                calibration,
            })
            .collect(),
    };
    let pooled_note = if several_seeds {
        ", tokens of all seeds pooled"
    } else {
        ""
    };
    figures.save(
        "reliability-grid",
        &format!(
            "{primary}: teacher-forced reliability diagrams, one per α, and α = 0 after temperature scaling{pooled_note}"
        ),
        &grid_figure,
    )?;
    Ok(())
}

/// The penultimate-layer picture, from the models or, where they are not (a committed report), from
/// its cached points.
fn penultimate(
    figures: &mut FigureDir,
    sweep: &Sweep,
    first_seed: &[&RunResult],
    device: &Device,
) -> Result<()> {
    // The projected points are kept in figures/penultimate.json, so that the figure can be redrawn
    // where the models are not (a committed report).
    let cache = figures.dir.join("penultimate.json");
    let scatter = match penultimate_figure(sweep, first_seed, device) {
        Ok(Some(figure)) => {
            seqls_data::read::write_atomic(&cache, serde_json::to_string(&figure)?.as_bytes())?;
            Some(figure)
        }
        Ok(None) => None,
        Err(e) if cache.exists() => {
            eprintln!(
                "notice: penultimate-layer picture redrawn from {}: {e:#}",
                cache.display()
            );
            let text = std::fs::read_to_string(&cache).at(cache.display())?;
            Some(serde_json::from_str(&text).at(cache.display())?)
        }
        Err(e) => {
            return Err(SweepError::At {
                context: "penultimate-layer picture".into(),
                source: Box::new(e),
            });
        }
    };
    if let Some(figure) = scatter {
        figures.save("penultimate", "Penultimate-layer picture", &figure)?;
    }
    Ok(())
}

/// The penultimate-layer picture of the smallest and the largest α; `None` with a single α.
fn penultimate_figure(
    sweep: &Sweep,
    runs: &[&RunResult],
    device: &Device,
) -> Result<Option<Scatter>> {
    let smallest = runs.iter().min_by(|a, b| a.alpha.total_cmp(&b.alpha));
    let largest = runs.iter().max_by(|a, b| a.alpha.total_cmp(&b.alpha));
    let (Some(lo), Some(hi)) = (smallest, largest) else {
        return Ok(None);
    };
    if lo.alpha == hi.alpha {
        return Ok(None);
    }
    let mut panels = Vec::new();
    let mut classes = Vec::new();
    for r in [lo, hi] {
        let run = sweep.run_dir(r.alpha, r.seed);
        let (run_config, tokenizer, model) = run.load_model(device)?;
        let text = run_config.data.load_split(&sweep.test_splits[0])?;
        let encoded = encode_pairs(&tokenizer, &text.pairs, None)?;
        if classes.is_empty() {
            let tokens = penultimate::frequent_word_tokens(&encoded.examples, &tokenizer);
            classes = tokens
                .iter()
                .filter_map(|&t| tokenizer.id_to_token(t))
                .collect::<Vec<_>>();
        }
        let ids: Vec<u32> = classes
            .iter()
            .filter_map(|s| tokenizer.token_to_id(s))
            .collect();
        let Ok(ids) = <[u32; 3]>::try_from(ids) else {
            return Ok(None);
        };
        let projection = penultimate::project(&model, &encoded.examples, ids, 300, device);
        panels.push(ScatterPanel {
            title: format!("α = {}", r.alpha),
            points: projection.points,
            anchors: projection.templates,
        });
    }
    Ok(Some(Scatter {
        classes: classes
            .iter()
            .map(|c| format!("\"{}\"", c.trim_start_matches('▁')))
            .collect(),
        panels,
        x_label: "e1".into(),
        y_label: "e2".into(),
    }))
}

/// What every column and comparison of the report means.
fn definitions(md: &mut String, sweep: &Sweep) -> Result<()> {
    let grid = &sweep.config.sweep;
    writeln!(
        md,
        "BLEU: sacreBLEU on detokenised output, `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`. \
         NLL per reference token (`</s>` included), nats. ECE/MCE/adaptive ECE: teacher-forced top-class \
         confidence on the test references, {bins} bins, `</s>` included. T*: the temperature minimising \
         validation NLL; ECE@T*: test ECE at T*. len bK: hypothesis/reference length ratio (13a tokens) at \
         beam K. Inference ECE: confidence of each token the beam-{compare} search produced vs whether an \
         edit-distance alignment to the reference matches it (Wang et al. 2020). Oracle (synthetic corpus \
         only): oracle gap = mean |p − q| between the model's and the generator's probability of each reference word, \
         and ECE against q. H(q)/ln(K−1), KL(q‖u), top-5 q (validation split, teacher forced): the model's \
         distribution over the K − 1 non-reference tokens, renormalised, as its entropy relative to uniform, \
         its KL divergence from uniform (nats) and the mass of its five largest entries, averaged over \
         positions: what the logits say beyond the reference, which label smoothing is said to erase \
         (Müller et al. 2019). \"{MEAN_OVER_SPLITS}\": each number averaged over the test sets. \
         Comparisons: Δ is the mean over seeds of the per-seed corpus-BLEU difference (seed s of α against \
         seed s of the baseline: same initialisation and batch order); the crossed bootstrap \
         ({BOOTSTRAP_SAMPLES} resamples) draws seeds with replacement and one resample of the test sentences \
         shared by every drawn seed and system (every seed translated the same sentences), so its interval \
         holds both the training-seed and the test-set variance, each once; the t-test over seeds treats the \
         test set as fixed (df = S − 1); the sign-flip test enumerates the 2^S sign patterns of the per-seed \
         differences (its p cannot go below 2/2^S); \"smallest detectable\": the effect detected with 80% power at \
         5%, by the bootstrap 2.80·se (se: the standard deviation of its resamples) and by the t-test \
         (t(0.975, S−1) + t(0.8, S−1))·sd/√S from the seed spread alone. p (Holm): the \
         bootstrap p-value adjusted over every comparison of this report except the primary contrast \
         (`sweep.primary`). With one seed the bootstrap reduces to the paired bootstrap over sentences \
         (Koehn 2004). Search: {}.\n",
        serde_json::to_string(&sweep.config.decode)?,
        compare = grid.compare_beam,
        bins = seqls_eval::calibration::DEFAULT_BINS,
    )?;
    Ok(())
}

/// Training time and the validation of every epoch, per run.
fn epoch_table(md: &mut String, runs: &[RunResult]) -> Result<()> {
    writeln!(md, "## Training time and validation per epoch\n")?;
    writeln!(
        md,
        "| α | seed | threads | train s | greedy valid BLEU per epoch | valid NLL per epoch |\n|---|---|---|---|---|---|"
    )?;
    for r in runs {
        let bleus: Vec<String> = r
            .epochs
            .iter()
            .map(|e| e.greedy_bleu.map_or("–".into(), |b| format!("{b:.2}")))
            .collect();
        let nlls: Vec<String> = r.epochs.iter().map(|e| format!("{:.3}", e.nll)).collect();
        writeln!(
            md,
            "| {} | {} | {} | {:.0} | {} | {} |",
            r.alpha,
            r.seed,
            r.threads,
            r.train_seconds,
            bleus.join(", "),
            nlls.join(", ")
        )?;
    }
    Ok(())
}

/// The figures, each under its title, and how the penultimate-layer picture is made.
fn figure_list(md: &mut String, figures: &[(String, String)]) -> Result<()> {
    writeln!(md, "## Figures\n")?;
    for (title, stem) in figures {
        writeln!(
            md,
            "### {title}\n\n![{title}]({stem}.png) ([SVG]({stem}.svg))\n"
        )?;
    }
    writeln!(
        md,
        "Penultimate-layer picture (Müller, Kornblith & Hinton 2019, Figure 1, for translation): the \
         three most frequent word tokens of the test references are chosen; the plane through their \
         three output-embedding vectors gets an orthonormal basis (e1 along w2 − w1, e2 the \
         Gram–Schmidt remainder of w3 − w1); the decoder's final hidden state at each test position \
         whose reference is one of the three tokens (teacher forced, up to 300 per token) is projected \
         onto it, relative to w1; crosses mark the three templates. Left: the smallest α, right: the largest.\n"
    )?;
    Ok(())
}

/// The commands that continue the sweep and rebuild the report.
fn reproduce(md: &mut String, dir: &Path) -> Result<()> {
    writeln!(
        md,
        "## Reproduce\n\n```\nseqls sweep --config {d}/sweep.toml --out {d}    # finished jobs are skipped\nseqls report {d}                                  # tables and figures from finished jobs\nseqls sweep --config {d}/sweep.toml --out {d} --plan   # one command per job\n```",
        d = dir.display()
    )?;
    Ok(())
}

/// Assembles the report of the sweep directory `dir` from its finished jobs; returns the markdown.
pub fn write_report(dir: &Path, device: &Device) -> Result<String> {
    let sweep = Sweep::open(dir)?;
    let runs = collect(&sweep)?;
    if runs.is_empty() {
        fail!("{}: no finished runs with evaluations yet", dir.display());
    }
    let grid = &sweep.config.sweep;
    let all_cols = columns(&grid.beams, grid.compare_beam);
    // Drop columns that no row has (oracle columns outside the synthetic corpus).
    let cols: Vec<&Column> = all_cols
        .iter()
        .filter(|c| {
            runs.iter()
                .any(|r| r.splits.iter().any(|s| (c.value)(r, s).is_some()))
        })
        .collect();
    let mut sections: Vec<&str> = sweep.test_splits.iter().map(String::as_str).collect();
    if sections.len() > 1 {
        sections.push(MEAN_OVER_SPLITS);
    }

    let mut md = String::new();
    let mut csv = String::from("split,alpha,seed");
    for c in &cols {
        write!(csv, ",{}", c.header.replace(' ', "_"))?;
    }
    csv.push_str(",threads\n");
    let seeds_present: std::collections::BTreeSet<u64> = runs.iter().map(|r| r.seed).collect();
    writeln!(
        md,
        "# seqls sweep: {}\n\n{} finished runs: α ∈ {{{}}}, seeds {{{}}}; test sets: {}.\n",
        sweep.config.name,
        runs.len(),
        grid.alphas
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        seeds_present
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        sweep.test_splits.join(", ")
    )?;
    let mut comparisons_all = Vec::new();
    for split in &sweep.test_splits {
        comparisons_all.extend(comparisons(&sweep, &runs, split)?);
    }
    crate::findings::adjust(&mut comparisons_all, grid.primary.as_ref());
    let findings = crate::findings::findings(&comparisons_all);
    if let Some(p) = &grid.primary
        && !comparisons_all.iter().any(|c| c.primary)
    {
        writeln!(
            md,
            "**Note**: the declared primary contrast (α = {} at beam {} on {}) has no comparison in this \
             report; every comparison below is Holm-adjusted.\n",
            p.alpha, p.beam, p.split
        )?;
    }
    if !findings.is_empty() {
        writeln!(
            md,
            "## Findings\n\nGenerated from the comparisons below: \"higher\" or \"lower\" only where the 95% interval \
             excludes zero and the p-value is below 0.05 (Holm-adjusted over every comparison but the primary one).\n\n\
             {}\n{findings}{}\n",
            crate::findings::FINDINGS_BEGIN,
            crate::findings::FINDINGS_END
        )?;
    }
    for split in &sections {
        writeln!(md, "## {split}\n")?;
        split_tables(&mut md, &mut csv, &sweep, &runs, split, &cols)?;
        if *split != MEAN_OVER_SPLITS {
            comparison_tables(&mut md, split, &comparisons_all)?;
        }
        writeln!(md)?;
    }
    definitions(&mut md, &sweep)?;
    epoch_table(&mut md, &runs)?;

    let mut figure_dir = FigureDir {
        dir: sweep.dir.join("figures"),
        written: write_figures(&sweep, &runs, device)?,
    };
    writeln!(md)?;
    let search = crate::search_report::write_search(&mut md, &sweep, &mut figure_dir)?;
    let distillation =
        crate::distill_report::write_distillation(&mut md, &sweep, &runs, &mut figure_dir)?;
    let figures = figure_dir.written;
    figure_list(&mut md, &figures)?;
    reproduce(&mut md, dir)?;
    seqls_data::read::write_atomic(&dir.join("report.md"), md.as_bytes())?;
    crate::findings::update_readme_findings(&dir.join("README.md"), &findings)?;
    seqls_data::read::write_atomic(&dir.join("table.csv"), csv.as_bytes())?;
    seqls_data::read::write_atomic(
        &dir.join("report.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "config": sweep.config.name,
            "test_splits": sweep.test_splits,
            "runs": runs,
            "comparisons": comparisons_all,
            "search": search,
            "distillation": distillation,
            "figures": figures,
        }))?
        .as_bytes(),
    )?;
    Ok(md)
}
