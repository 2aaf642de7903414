//! The comparisons of a report: each α against the smallest at every beam, and the change of the
//! beam-search gain, over seeds, in BLEU and in chrF on the same resamples ([`seqls_eval::seeds`]),
//! from per-sentence statistics cached next to each evaluation.

use crate::driver::Sweep;
use crate::error::{Result, SweepError};
use crate::per_run::evaluate::{bleu_stats_file, chrf_stats_file};
use crate::report::collect::{RunResult, SplitResult};
use crate::report::tables::by_alpha;
use seqls_eval::{
    BleuOptions, ChrfStats, SeedContrast, SentenceStats, Term, bleu_from_stats, chrf_of,
    chrf_seed_contrast, chrf_sentence_stats, seed_contrast, sentence_stats,
};
use seqls_run::RunDir;
use seqls_run::error::At;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// Resamples of every bootstrap in the report, and the seed of their generator.
pub(crate) const BOOTSTRAP_SAMPLES: usize = 1000;
pub(crate) const BOOTSTRAP_SEED: u64 = 12345;

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
        seqls_data::write::write_atomic(cache, serde_json::to_string(&stats)?.as_bytes())?;
        stats
    };
    let all: Vec<usize> = (0..stats.len()).collect();
    let got = score(&stats, &all);
    if (got - expected).abs() > 1e-6 {
        return Err(SweepError::StaleStatistics {
            file: cache.to_path_buf(),
            got,
            expected,
        });
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
                Ok(sentence_stats(&hyps, &refs, &options).at(hyp_path.display())?)
            },
            // Cannot fail: the default options are valid.
            |all, idx| bleu_from_stats(all, idx, &options).expect("default BLEU options"),
            b.bleu,
        )?;
        let chrf = cached_stats(
            &chrf_stats_file(&eval),
            || {
                let (hyps, refs) = texts()?;
                Ok(chrf_sentence_stats(&hyps, &refs).at(hyp_path.display())?)
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
        bleu: seed_contrast(
            &bleu,
            &BleuOptions::default(),
            BOOTSTRAP_SAMPLES,
            BOOTSTRAP_SEED,
        )?,
        chrf: chrf_seed_contrast(&chrf, BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED)?,
    })
}

/// One term of a contrast: weight, beam size, and whether it is the baseline α's.
type ContrastTerm = (f64, usize, bool);

/// Each α against the smallest α at every beam size, and the change of the gain of beam
/// `compare_beam` over greedy, on `split`, over the seeds both have.
pub(crate) fn comparisons(
    sweep: &Sweep,
    runs: &[RunResult],
    split: &str,
) -> Result<Vec<Comparison>> {
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
            let MetricContrasts {
                bleu: contrast,
                chrf,
            } = contrasts(&term_refs)?;
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

pub(crate) fn comparison_tables(
    md: &mut String,
    split: &str,
    comparisons: &[Comparison],
) -> Result<()> {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A contrast with the given difference, interval and p-value.
    pub(crate) fn contrast(delta: f64, ci: (f64, f64), p_value: f64) -> SeedContrast {
        SeedContrast {
            delta,
            per_seed: vec![delta - 0.1, delta + 0.1],
            samples: 1000,
            ci,
            p_value,
            t_test: None,
            sign_flip_p: Some(0.5),
            min_detectable: Some(0.9),
            bootstrap_se: 0.25,
            min_detectable_bootstrap: 0.7,
        }
    }

    /// A BLEU comparison of `alpha` against 0 at beam 4 on `t`, with chrF `+0.30 [−0.10, +0.70]`.
    pub(crate) fn comparison(alpha: f64, bleu: SeedContrast) -> Comparison {
        Comparison {
            split: "t".into(),
            kind: "bleu".into(),
            alpha,
            baseline_alpha: 0.0,
            beam: 4,
            seeds: vec![1, 2],
            contrast: bleu,
            chrf: contrast(0.3, (-0.1, 0.7), 0.2),
            primary: false,
            holm_p_value: None,
        }
    }

    #[test]
    fn cells_print_the_difference_interval_and_tests() {
        let c = contrast(0.5, (0.1, 0.9), 0.012);
        assert_eq!(
            contrast_cells(&c),
            "+0.50 | +0.40, +0.60 | [+0.10, +0.90] | 0.0120 | – | 0.500 | 0.70 / 0.90"
        );
        assert_eq!(chrf_cell(&c), "+0.50 [+0.10, +0.90]");
        let mut primary = comparison(0.1, c);
        primary.primary = true;
        assert_eq!(adjusted_cell(&primary), "primary");
    }

    #[test]
    fn cached_statistics_are_computed_once_and_refused_when_stale() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("eval.chrf-stats.json");
        let hyps = vec!["a dog runs".to_string(), "a cat".to_string()];
        let refs = vec![vec!["a dog runs".to_string(), "the cat".to_string()]];
        let expected = chrf_of(&chrf_sentence_stats(&hyps, &refs).unwrap(), &[0, 1]);
        let compute = || Ok(chrf_sentence_stats(&hyps, &refs).unwrap());
        let first = cached_stats(&cache, compute, chrf_of, expected).unwrap();
        assert!(cache.exists());
        // Read back from the cache: the computation is not called again.
        let again = cached_stats(&cache, || panic!("recomputed"), chrf_of, expected).unwrap();
        assert_eq!(first, again);
        // A cache that does not give the evaluation's score is an error naming the file.
        let err = cached_stats(&cache, || panic!("recomputed"), chrf_of, expected + 1.0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("eval.chrf-stats.json") && err.contains("stale"),
            "{err}"
        );
    }

    #[test]
    fn both_metrics_are_contrasted_over_the_same_seeds() {
        let refs = vec![vec![
            "a dog runs fast".to_string(),
            "two men talk".to_string(),
        ]];
        let stats = |hyps: [&str; 2]| {
            let hyps: Vec<String> = hyps.iter().map(|s| s.to_string()).collect();
            EvalStats {
                bleu: sentence_stats(&hyps, &refs, &BleuOptions::default()).unwrap(),
                chrf: chrf_sentence_stats(&hyps, &refs).unwrap(),
            }
        };
        let good = [
            stats(["a dog runs fast", "two men talk"]),
            stats(["a dog runs", "two men talk"]),
        ];
        let bad = [stats(["a dog", "men"]), stats(["dog runs", "two men"])];
        let c = contrasts(&[(1.0, good.iter().collect()), (-1.0, bad.iter().collect())]).unwrap();
        assert_eq!(c.bleu.per_seed.len(), 2);
        assert_eq!(c.chrf.per_seed.len(), 2);
        assert!(c.bleu.delta > 0.0 && c.chrf.delta > 0.0);
        assert_eq!(
            (c.bleu.samples, c.chrf.samples),
            (BOOTSTRAP_SAMPLES, BOOTSTRAP_SAMPLES)
        );
    }
}
