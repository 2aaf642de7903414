//! Corpus BLEU and chrF exactly as sacreBLEU 2.6.0 computes them (through `sacrebleu-rs`), with the
//! option checks that crate leaves to its caller, and paired bootstrap resampling.
//!
//! BLEU is on a 0–100 scale. Refused instead of silently changed: tokenizers other than `13a`, `intl`,
//! `char`, `none` (e.g. `zh`); a fractional add-k value (the crate would truncate it); a reference file
//! whose line count differs from the hypotheses'.

use crate::error::EvalError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sacrebleu_rs::{Bleu, BleuScore, Chrf, compute_bleu};
use serde::{Deserialize, Serialize};

/// Options of a BLEU computation (the `sacrebleu` command-line flags).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BleuOptions {
    /// `13a` (default), `intl`, `char` or `none`.
    pub tokenize: String,
    pub lowercase: bool,
    /// `exp` (default), `floor`, `add-k` or `none`.
    pub smooth_method: String,
    pub smooth_value: Option<f64>,
}

impl Default for BleuOptions {
    fn default() -> Self {
        BleuOptions {
            tokenize: "13a".into(),
            lowercase: false,
            smooth_method: "exp".into(),
            smooth_value: None,
        }
    }
}

/// A BLEU score with what a report needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BleuReport {
    pub score: f64,
    /// n-gram precisions (percent), n = 1..4.
    pub precisions: Vec<f64>,
    pub brevity_penalty: f64,
    pub hyp_len: i64,
    pub ref_len: i64,
    /// `hyp_len / ref_len`.
    pub ratio: f64,
    pub signature: String,
    /// sacreBLEU's score line, e.g. `BLEU = 35.12 67.1/41.2/27.0/18.3 (BP = 1.000 ...)`.
    pub line: String,
}

pub(crate) fn bleu_metric(options: &BleuOptions) -> Result<Bleu, EvalError> {
    if !["13a", "intl", "char", "none"].contains(&options.tokenize.as_str()) {
        return Err(EvalError::Tokenizer(options.tokenize.clone()));
    }
    if !["exp", "floor", "add-k", "none"].contains(&options.smooth_method.as_str()) {
        return Err(EvalError::Smoothing(options.smooth_method.clone()));
    }
    if let Some(k) = options.smooth_value
        && options.smooth_method == "add-k"
        && (k.fract() != 0.0 || k < 0.0)
    {
        return Err(EvalError::AddK(k));
    }
    Ok(Bleu {
        lowercase: options.lowercase,
        smooth_method: options.smooth_method.clone(),
        smooth_value: options.smooth_value,
        tokenize: options.tokenize.clone(),
        ..Bleu::default()
    })
}

/// Checks that every reference stream has one line per hypothesis.
pub fn check_lengths(hyps: &[String], refs: &[Vec<String>]) -> Result<(), EvalError> {
    if refs.is_empty() {
        return Err(EvalError::NoReference);
    }
    for (i, stream) in refs.iter().enumerate() {
        if stream.len() != hyps.len() {
            return Err(EvalError::LineCount {
                stream: i + 1,
                lines: stream.len(),
                hypotheses: hyps.len(),
            });
        }
    }
    Ok(())
}

fn report(score: &BleuScore, signature: String) -> BleuReport {
    let ratio = if score.ref_len > 0 {
        score.sys_len as f64 / score.ref_len as f64
    } else {
        0.0
    };
    BleuReport {
        score: score.score,
        precisions: score.precisions.clone(),
        brevity_penalty: score.bp,
        hyp_len: score.sys_len,
        ref_len: score.ref_len,
        ratio,
        line: format!("BLEU = {:.2} {}", score.score, score.verbose()),
        signature,
    }
}

/// Corpus BLEU of `hyps` against reference streams `refs[r][i]`.
pub fn corpus_bleu(
    hyps: &[String],
    refs: &[Vec<String>],
    options: &BleuOptions,
) -> Result<BleuReport, EvalError> {
    check_lengths(hyps, refs)?;
    let metric = bleu_metric(options)?;
    Ok(report(
        &metric.corpus_score(hyps, refs),
        metric.signature(refs.len() as i64),
    ))
}

/// Corpus chrF (β = 2, character 6-grams) and its signature.
pub fn corpus_chrf(hyps: &[String], refs: &[Vec<String>]) -> Result<(f64, String), EvalError> {
    check_lengths(hyps, refs)?;
    let chrf = Chrf::default();
    Ok((
        chrf.corpus_score(hyps, refs).score,
        chrf.signature(refs.len() as i64),
    ))
}

/// The BLEU statistics of one sentence: matched and total n-grams for n = 1..4, hypothesis and
/// reference length (13a tokens by default). Corpus BLEU of any set of sentences follows from their sum
/// ([`bleu_from_stats`]), so these are what a bootstrap needs, without the texts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentenceStats {
    pub counts: Vec<i64>,
    pub totals: Vec<i64>,
    pub sys_len: i64,
    pub ref_len: i64,
}

/// Per-sentence statistics of `hyps[i]` against `refs[r][i]`.
pub fn sentence_stats(
    hyps: &[String],
    refs: &[Vec<String>],
    options: &BleuOptions,
) -> Result<Vec<SentenceStats>, EvalError> {
    check_lengths(hyps, refs)?;
    let metric = bleu_metric(options)?;
    Ok(sentence_scores(&metric, hyps, refs)
        .into_iter()
        .map(|s| SentenceStats {
            counts: s.counts,
            totals: s.totals,
            sys_len: s.sys_len,
            ref_len: s.ref_len,
        })
        .collect())
}

fn sentence_scores(metric: &Bleu, hyps: &[String], refs: &[Vec<String>]) -> Vec<BleuScore> {
    (0..hyps.len())
        .map(|i| {
            let seg_refs: Vec<Vec<String>> = refs.iter().map(|s| vec![s[i].clone()]).collect();
            metric.corpus_score(&[hyps[i].clone()], &seg_refs)
        })
        .collect()
}

/// Sentence BLEU (0–100) as sacreBLEU's `sentence_bleu` computes it from one sentence's statistics:
/// `exp` smoothing with the effective order (n-gram orders the sentence has no n-grams of are left
/// out of the geometric mean).
pub fn sentence_bleu(stats: &SentenceStats) -> f64 {
    let order = stats.counts.len();
    compute_bleu(
        stats.counts.clone(),
        stats.totals.clone(),
        stats.sys_len,
        stats.ref_len,
        "exp",
        None,
        true,
        order,
    )
    .score
}

/// Corpus BLEU of the sentences `idx` (repeats allowed) from their statistics, with the smoothing of
/// `options`.
pub fn bleu_from_stats(
    all: &[SentenceStats],
    idx: &[usize],
    options: &BleuOptions,
) -> Result<f64, EvalError> {
    let metric = bleu_metric(options)?;
    Ok(bleu_of(&metric, all, idx))
}

/// Corpus BLEU of the sentences `idx` (repeats allowed) from their statistics.
pub(crate) fn bleu_of(metric: &Bleu, all: &[SentenceStats], idx: &[usize]) -> f64 {
    let order = metric.max_ngram_order;
    let (mut correct, mut total, mut sys_len, mut ref_len) =
        (vec![0i64; order], vec![0i64; order], 0, 0);
    for &i in idx {
        let s = &all[i];
        for k in 0..order {
            correct[k] += s.counts[k];
            total[k] += s.totals[k];
        }
        sys_len += s.sys_len;
        ref_len += s.ref_len;
    }
    compute_bleu(
        correct,
        total,
        sys_len,
        ref_len,
        &metric.smooth_method,
        metric.smooth_value,
        false,
        order,
    )
    .score
}

/// Result of paired bootstrap resampling of one system against a baseline.
#[derive(Debug, Clone, Serialize)]
pub struct PairedBootstrap {
    pub samples: usize,
    pub baseline: f64,
    pub system: f64,
    /// Mean over resamples and 95% interval (2.5th and 97.5th percentiles), for each system and for the
    /// difference system − baseline.
    pub baseline_mean: f64,
    pub baseline_ci: (f64, f64),
    pub system_mean: f64,
    pub system_ci: (f64, f64),
    pub delta_ci: (f64, f64),
    /// Two-sided p-value of the observed difference (Koehn 2004 with sacreBLEU's centring):
    /// `(1 + #{|d_s − mean(d)| ≥ |d_obs|}) / (1 + samples)`.
    pub p_value: f64,
}

/// Paired bootstrap resampling (Koehn 2004; sacreBLEU `--paired-bs`): draw `samples` resamples of the
/// sentence indices (with replacement, seeded), score both systems on each from per-sentence BLEU
/// statistics, and compare.
pub fn paired_bootstrap(
    baseline: &[String],
    system: &[String],
    refs: &[Vec<String>],
    options: &BleuOptions,
    samples: usize,
    seed: u64,
) -> Result<PairedBootstrap, EvalError> {
    check_lengths(baseline, refs)?;
    check_lengths(system, refs)?;
    let metric = bleu_metric(options)?;
    let n = baseline.len();
    if n == 0 {
        return Err(EvalError::NoSentences);
    }
    if samples == 0 {
        return Err(EvalError::NoResamples);
    }
    let (base_stats, sys_stats) = (
        sentence_stats(baseline, refs, options)?,
        sentence_stats(system, refs, options)?,
    );
    let score_of = |all: &[SentenceStats], idx: &[usize]| bleu_of(&metric, all, idx);
    let all: Vec<usize> = (0..n).collect();
    let (real_base, real_sys) = (score_of(&base_stats, &all), score_of(&sys_stats, &all));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut base_scores = Vec::with_capacity(samples);
    let mut sys_scores = Vec::with_capacity(samples);
    let mut idx = vec![0usize; n];
    for _ in 0..samples {
        for x in idx.iter_mut() {
            *x = rng.random_range(0..n);
        }
        base_scores.push(score_of(&base_stats, &idx));
        sys_scores.push(score_of(&sys_stats, &idx));
    }
    let deltas: Vec<f64> = sys_scores
        .iter()
        .zip(&base_scores)
        .map(|(s, b)| s - b)
        .collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let ci = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        let at = |q: f64| s[((q * s.len() as f64) as usize).min(s.len() - 1)];
        (at(0.025), at(0.975))
    };
    let real_delta = real_sys - real_base;
    let mean_delta = mean(&deltas);
    let extreme = deltas
        .iter()
        .filter(|d| (*d - mean_delta).abs() >= real_delta.abs())
        .count();
    Ok(PairedBootstrap {
        samples,
        baseline: real_base,
        system: real_sys,
        baseline_mean: mean(&base_scores),
        baseline_ci: ci(&base_scores),
        system_mean: mean(&sys_scores),
        system_ci: ci(&sys_scores),
        delta_ci: ci(&deltas),
        p_value: (extreme + 1) as f64 / (samples + 1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    /// Expected values computed once with Python sacrebleu 2.6.0 (`sacrebleu.corpus_bleu`).
    #[test]
    fn matches_sacrebleu_on_fixed_examples() {
        let hyps = s(&[
            "The dog bit the man.",
            "It wasn't surprising.",
            "The man had just bitten him.",
        ]);
        let refs = vec![s(&[
            "The dog bit the man.",
            "It was not unexpected.",
            "The man bit him first.",
        ])];
        let r = corpus_bleu(&hyps, &refs, &BleuOptions::default()).unwrap();
        assert!((r.score - 45.06750632106114).abs() < 1e-9, "{}", r.score);
        assert_eq!(
            r.signature,
            "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
        );
        assert_eq!((r.hyp_len, r.ref_len), (17, 17));
        assert_eq!(
            r.line,
            "BLEU = 45.07 70.6/42.9/36.4/37.5 (BP = 1.000 ratio = 1.000 hyp_len = 17 ref_len = 17)"
        );
        let (chrf, _) = corpus_chrf(&hyps, &refs).unwrap();
        assert!((chrf - 50.043063606582294).abs() < 1e-9, "{chrf}");
        let other = BleuOptions {
            tokenize: "intl".into(),
            lowercase: true,
            smooth_method: "floor".into(),
            smooth_value: None,
        };
        let r = corpus_bleu(&hyps, &refs, &other).unwrap();
        assert!((r.score - 38.45246642636116).abs() < 1e-9, "{}", r.score);
    }

    #[test]
    fn bad_options_and_line_counts_are_refused() {
        let hyps = s(&["a b c"]);
        let refs = vec![s(&["a b c", "d"])];
        assert!(
            corpus_bleu(&hyps, &refs, &BleuOptions::default())
                .unwrap_err()
                .to_string()
                .contains("reference 1 has 2 lines")
        );
        let refs = vec![s(&["a b c"])];
        let zh = BleuOptions {
            tokenize: "zh".into(),
            ..BleuOptions::default()
        };
        assert!(
            corpus_bleu(&hyps, &refs, &zh)
                .unwrap_err()
                .to_string()
                .contains("\"zh\" is not supported")
        );
        let addk = BleuOptions {
            smooth_method: "add-k".into(),
            smooth_value: Some(0.5),
            ..BleuOptions::default()
        };
        assert!(
            corpus_bleu(&hyps, &refs, &addk)
                .unwrap_err()
                .to_string()
                .contains("whole number")
        );
    }

    #[test]
    fn paired_bootstrap_of_identical_systems_is_not_significant() {
        let hyps = s(&["a b c d", "e f g h", "a c d e", "x y z w", "b c d e"]);
        let refs = vec![s(&["a b c d", "e f g i", "a c d e", "x y z q", "b c d f"])];
        let r = paired_bootstrap(&hyps, &hyps, &refs, &BleuOptions::default(), 200, 1).unwrap();
        assert_eq!(r.baseline, r.system);
        assert!(r.p_value > 0.5);
        assert!(r.system_ci.0 <= r.system && r.system <= r.system_ci.1 + 1e-9);
    }
}
