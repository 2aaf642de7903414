//! Comparing systems trained under several seeds: a contrast of corpus BLEU scores with an interval
//! that accounts for both the test sentences and the training seed.
//!
//! A *contrast* is a weighted sum of systems, `Δ = Σ_i w_i · BLEU_i`: `[(1, α=0.1), (−1, α=0)]` is
//! the gain of smoothing; `[(1, α b4), (−1, α b1), (−1, 0 b4), (1, 0 b1)]` is how much smoothing
//! changes the gain of beam search over greedy. Every system has one output per seed, given by its
//! per-sentence BLEU statistics ([`SentenceStats`]: all a bootstrap needs, so a committed report can
//! be recomputed without the references); system `i` under seed `s` is `stats[i][s]`. The observed
//! contrast is the mean over seeds of the per-seed contrasts `Δ_s = Σ_i w_i · BLEU(stats[i][s])`.
//!
//! Two tests are reported, because they answer different questions:
//!
//! - **Two-level bootstrap** (the headline): each resample draws `S` seeds with replacement, and for
//!   each drawn seed a resample of the sentences (the same sentence indices for every system of that
//!   seed, so the comparison stays paired), computes the contrast on it and averages over the drawn
//!   seeds. Its spread contains both the seed-to-seed variation of training and the sampling of the
//!   test set (a sentence-only bootstrap ignores the former, a test over seeds alone the latter).
//!   Interval: 2.5th and 97.5th percentiles; p-value two-sided with sacreBLEU's centring,
//!   `(1 + #{|Δ* − mean(Δ*)| ≥ |Δ|}) / (1 + B)`. With few seeds the seed level is resampled coarsely
//!   (3 seeds give 10 distinct multisets), so the interval is a lower bound of the real uncertainty.
//! - **Paired t-test over seeds** on `Δ_s` (`t = mean / (sd/√S)`, `S − 1` degrees of freedom), which
//!   treats the test set as fixed and asks whether the sign of the effect survives re-training. With
//!   `S = 3` it has 2 degrees of freedom and little power: a small p needs a consistent effect.

use crate::bleu::{BleuOptions, SentenceStats, bleu_metric, bleu_of};
use crate::error::EvalError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// One system of a contrast: its weight and its sentence statistics per seed (`stats[seed][sentence]`).
#[derive(Debug, Clone)]
pub struct Term<'a> {
    pub weight: f64,
    pub stats: Vec<&'a [SentenceStats]>,
}

/// The paired t-test over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedTTest {
    pub t: f64,
    pub degrees_of_freedom: usize,
    /// Two-sided.
    pub p_value: f64,
    /// 95% interval of the mean per-seed contrast: `mean ± t_{0.975, S−1} · sd/√S`.
    pub ci: (f64, f64),
}

/// A contrast estimated over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedContrast {
    /// Mean over seeds of the per-seed contrast (BLEU points).
    pub delta: f64,
    /// The contrast of each seed, in seed order.
    pub per_seed: Vec<f64>,
    /// Two-level bootstrap: resamples, 95% interval and two-sided p-value.
    pub samples: usize,
    pub ci: (f64, f64),
    pub p_value: f64,
    /// `None` with a single seed.
    pub t_test: Option<SeedTTest>,
}

/// Estimates the contrast `terms` with `samples` two-level bootstrap resamples drawn from `rng_seed`.
/// Every term needs the same number of seeds and every statistics list the same number of sentences.
pub fn seed_contrast(
    terms: &[Term],
    options: &BleuOptions,
    samples: usize,
    rng_seed: u64,
) -> Result<SeedContrast, EvalError> {
    let seeds = terms.first().map_or(0, |t| t.stats.len());
    if terms.is_empty() || seeds == 0 {
        return Err(EvalError::Contrast(
            "a contrast needs at least one system with at least one seed",
        ));
    }
    if terms.iter().any(|t| t.stats.len() != seeds) {
        return Err(EvalError::Contrast(
            "every system of a contrast needs the same seeds",
        ));
    }
    if samples == 0 {
        return Err(EvalError::NoResamples);
    }
    let n = terms[0].stats[0].len();
    if terms.iter().flat_map(|t| &t.stats).any(|s| s.len() != n) {
        return Err(EvalError::Contrast(
            "every system of a contrast needs statistics of the same sentences",
        ));
    }
    if n == 0 {
        return Err(EvalError::NoSentences);
    }
    let metric = bleu_metric(options)?;
    let contrast_at = |seed: usize, idx: &[usize]| -> f64 {
        terms
            .iter()
            .map(|t| t.weight * bleu_of(&metric, t.stats[seed], idx))
            .sum()
    };
    let all: Vec<usize> = (0..n).collect();
    let per_seed: Vec<f64> = (0..seeds).map(|s| contrast_at(s, &all)).collect();
    let delta = mean(&per_seed);

    let mut rng = ChaCha8Rng::seed_from_u64(rng_seed);
    let mut idx = vec![0usize; n];
    let mut resampled = Vec::with_capacity(samples);
    for _ in 0..samples {
        let mut sum = 0.0;
        for _ in 0..seeds {
            let seed = rng.random_range(0..seeds);
            for x in idx.iter_mut() {
                *x = rng.random_range(0..n);
            }
            sum += contrast_at(seed, &idx);
        }
        resampled.push(sum / seeds as f64);
    }
    let centre = mean(&resampled);
    let extreme = resampled
        .iter()
        .filter(|d| (*d - centre).abs() >= delta.abs())
        .count();
    let mut sorted = resampled;
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((q * sorted.len() as f64) as usize).min(sorted.len() - 1)];
    Ok(SeedContrast {
        delta,
        t_test: t_test(&per_seed),
        per_seed,
        samples,
        ci: (at(0.025), at(0.975)),
        p_value: (extreme + 1) as f64 / (samples + 1) as f64,
    })
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

/// The one-sample t-test of `xs` against 0; `None` for fewer than two values.
pub fn t_test(xs: &[f64]) -> Option<SeedTTest> {
    let n = xs.len();
    if n < 2 {
        return None;
    }
    let m = mean(xs);
    let sd = (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let se = sd / (n as f64).sqrt();
    let dist = StudentsT::new(0.0, 1.0, (n - 1) as f64).ok()?;
    let half = dist.inverse_cdf(0.975) * se;
    let (t, p_value) = if se > 0.0 {
        let t = m / se;
        (t, 2.0 * (1.0 - dist.cdf(t.abs())))
    } else if m == 0.0 {
        (0.0, 1.0)
    } else {
        (f64::INFINITY.copysign(m), 0.0)
    };
    Some(SeedTTest {
        t,
        degrees_of_freedom: n - 1,
        p_value,
        ci: (m - half, m + half),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bleu::sentence_stats;
    use crate::corpus_bleu;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn t_test_matches_a_hand_computed_value() {
        // xs = 1, 2, 3: mean 2, sd 1, se 1/√3, t = 2√3 = 3.4641; two-sided p with 2 df is
        // 1 − t/√(t² + 2) = 1 − 3.4641/√14 = 0.07418 (closed form of the t(2) distribution).
        let r = t_test(&[1.0, 2.0, 3.0]).unwrap();
        assert!((r.t - 12f64.sqrt()).abs() < 1e-12);
        assert!(
            (r.p_value - (1.0 - 12f64.sqrt() / 14f64.sqrt())).abs() < 1e-9,
            "{r:?}"
        );
        // t_{0.975, 2} = 4.302653.
        let half = 4.302_652_7 / 3f64.sqrt();
        assert!((r.ci.0 - (2.0 - half)).abs() < 1e-5 && (r.ci.1 - (2.0 + half)).abs() < 1e-5);
        assert!(t_test(&[1.0]).is_none());
        assert_eq!(t_test(&[0.0, 0.0]).unwrap().p_value, 1.0);
    }

    #[test]
    fn the_observed_contrast_is_the_mean_of_the_per_seed_corpus_bleu_differences() {
        let refs = vec![lines(&[
            "the cat sat on the mat",
            "a dog runs in the park",
            "two men play football",
            "a woman reads a book",
        ])];
        let base = [
            lines(&[
                "the cat sat on mat",
                "a dog runs",
                "two men play",
                "a woman reads",
            ]),
            lines(&[
                "cat on the mat",
                "a dog in the park",
                "men play football",
                "woman reads a book",
            ]),
        ];
        let system = [
            lines(&[
                "the cat sat on the mat",
                "a dog runs in park",
                "two men play football",
                "a woman reads",
            ]),
            lines(&[
                "the cat sat on the mat",
                "a dog runs in the park",
                "men play football",
                "a woman reads a book",
            ]),
        ];
        let opts = BleuOptions::default();
        let stats = |h: &[Vec<String>]| -> Vec<Vec<SentenceStats>> {
            h.iter()
                .map(|x| sentence_stats(x, &refs, &opts).unwrap())
                .collect()
        };
        let (sys_stats, base_stats) = (stats(&system), stats(&base));
        let r = seed_contrast(
            &[
                Term {
                    weight: 1.0,
                    stats: sys_stats.iter().map(|h| h.as_slice()).collect(),
                },
                Term {
                    weight: -1.0,
                    stats: base_stats.iter().map(|h| h.as_slice()).collect(),
                },
            ],
            &opts,
            500,
            7,
        )
        .unwrap();
        let bleu = |h: &[String]| corpus_bleu(h, &refs, &opts).unwrap().score;
        let expected: Vec<f64> = (0..2).map(|s| bleu(&system[s]) - bleu(&base[s])).collect();
        for (a, b) in r.per_seed.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
        assert!((r.delta - (expected[0] + expected[1]) / 2.0).abs() < 1e-9);
        assert!(r.ci.0 <= r.ci.1);
        assert!(r.t_test.is_some());
    }

    #[test]
    fn identical_systems_give_zero_and_no_significance() {
        let refs = vec![lines(&["a b c d", "e f g h", "a c d e"])];
        let h = [
            lines(&["a b c d", "e f g i", "a c d f"]),
            lines(&["a b c x", "e f g h", "a c d e"]),
        ];
        let st: Vec<Vec<SentenceStats>> = h
            .iter()
            .map(|x| sentence_stats(x, &refs, &BleuOptions::default()).unwrap())
            .collect();
        let term = |w| Term {
            weight: w,
            stats: st.iter().map(|x| x.as_slice()).collect(),
        };
        let r = seed_contrast(&[term(1.0), term(-1.0)], &BleuOptions::default(), 200, 1).unwrap();
        assert_eq!(r.delta, 0.0);
        assert_eq!(r.ci, (0.0, 0.0));
        assert_eq!(r.p_value, 1.0);
    }

    #[test]
    fn mismatched_seeds_and_lengths_are_refused() {
        let refs = vec![lines(&["a b", "c d"])];
        let two = sentence_stats(&lines(&["a b", "c d"]), &refs, &BleuOptions::default()).unwrap();
        let err = seed_contrast(
            &[
                Term {
                    weight: 1.0,
                    stats: vec![&two, &two],
                },
                Term {
                    weight: -1.0,
                    stats: vec![&two],
                },
            ],
            &BleuOptions::default(),
            10,
            1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("same seeds"), "{err}");
        let err = seed_contrast(
            &[
                Term {
                    weight: 1.0,
                    stats: vec![&two],
                },
                Term {
                    weight: -1.0,
                    stats: vec![&two[..1]],
                },
            ],
            &BleuOptions::default(),
            10,
            1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("same sentences"), "{err}");
        let err = sentence_stats(&lines(&["a b"]), &refs, &BleuOptions::default()).unwrap_err();
        assert!(err.to_string().contains("lines"), "{err}");
    }
}
