//! Comparing systems trained under several seeds: a contrast of corpus BLEU scores with an interval
//! that accounts for both the test sentences and the training seed.
//!
//! A *contrast* is a weighted sum of systems, `Δ = Σ_i w_i · BLEU_i`: `[(1, α=0.1), (−1, α=0)]` is
//! the gain of smoothing; `[(1, α b4), (−1, α b1), (−1, 0 b4), (1, 0 b1)]` is how much smoothing
//! changes the gain of beam search over greedy. Every system has one output per seed, given by its
//! per-sentence BLEU statistics ([`SentenceStats`]: all a bootstrap needs, so a committed report can
//! be recomputed without the references); system `i` under seed `s` is `stats[i][s]`. The observed
//! contrast is the mean over seeds of the per-seed contrasts `Δ_s = Σ_i w_i · BLEU(stats[i][s])`.
//! chrF contrasts are the same with chrF's per-sentence statistics ([`ChrfStats`]) and the same
//! resamples.
//!
//! Three tests are reported, because they answer different questions:
//!
//! - **Crossed bootstrap** (the headline): each resample draws `S` seeds with replacement and *one*
//!   resample of the sentence indices, used for every drawn seed and every system (seeds and
//!   sentences are crossed: every seed translated the same test sentences), computes the contrast
//!   on it for each drawn seed and averages over them:
//!   `Δ* = (1/S) Σ_{j=1..S} Σ_i w_i · BLEU(stats[i][s*_j], idx*)`. Its spread contains both the
//!   seed-to-seed variation of training and the sampling of the test set, each counted once; drawing
//!   sentences anew for each seed (a nested design) would divide the test-set variance by `S`.
//!   Interval: 2.5th and 97.5th percentiles; p-value two-sided with sacreBLEU's centring,
//!   `(1 + #{|Δ* − mean(Δ*)| ≥ |Δ|}) / (1 + B)`. With few seeds the seed level is resampled coarsely
//!   (3 seeds give 10 distinct multisets), so the interval still understates the seed variance.
//! - **Paired t-test over seeds** on `Δ_s` (`t = mean / (sd/√S)`, `S − 1` degrees of freedom), which
//!   treats the test set as fixed and asks whether the sign of the effect survives re-training.
//! - **Exact sign-flip permutation test over seeds**: under "no effect" each `Δ_s` is as likely
//!   positive as negative, so `p = #{σ ∈ {±1}^S : |mean(σ·Δ)| ≥ |mean(Δ)|} / 2^S`, enumerated. It
//!   assumes no distribution, and cannot go below `2 / 2^S` (0.25 with 3 seeds, 0.0625 with 5).
//!
//! **Minimum detectable effects** at 5% (two-sided) and 80% power: of the t-test, from the seed
//! standard deviation `sd` of `Δ_s`, `(t_{0.975, S−1} + t_{0.80, S−1}) · sd / √S` (seed variance
//! only); of the bootstrap, from its standard error `se = sd(Δ*)`, `(z_{0.975} + z_{0.80}) · se =
//! 2.80 · se` (both variance components, the one the verdicts of a report follow).

use crate::bleu::{BleuOptions, SentenceStats, bleu_metric, bleu_of};
use crate::chrf::{ChrfStats, chrf_of};
use crate::error::EvalError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// One system of a contrast: its weight and its sentence statistics per seed (`stats[seed][sentence]`):
/// BLEU's [`SentenceStats`] by default, or chrF's [`ChrfStats`].
#[derive(Debug, Clone)]
pub struct Term<'a, S = SentenceStats> {
    pub weight: f64,
    pub stats: Vec<&'a [S]>,
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
    /// Crossed bootstrap: resamples, 95% interval and two-sided p-value.
    pub samples: usize,
    pub ci: (f64, f64),
    pub p_value: f64,
    /// `None` with a single seed.
    pub t_test: Option<SeedTTest>,
    /// Exact sign-flip permutation test over seeds (two-sided); `None` with a single seed.
    pub sign_flip_p: Option<f64>,
    /// Minimum detectable effect at 80% power of the t-test, from the seeds' spread; `None` with a
    /// single seed.
    pub min_detectable: Option<f64>,
    /// Standard deviation of the bootstrap resamples (BLEU points).
    pub bootstrap_se: f64,
    /// Minimum detectable effect at 80% power of the bootstrap: `2.80 · bootstrap_se`.
    pub min_detectable_bootstrap: f64,
}

/// Estimates the BLEU contrast `terms` with `samples` crossed bootstrap resamples drawn from
/// `rng_seed`. Every term needs the same number of seeds and every statistics list the same number
/// of sentences.
pub fn seed_contrast(
    terms: &[Term],
    options: &BleuOptions,
    samples: usize,
    rng_seed: u64,
) -> Result<SeedContrast, EvalError> {
    let metric = bleu_metric(options)?;
    contrast_with(
        terms,
        |all, idx| bleu_of(&metric, all, idx),
        samples,
        rng_seed,
    )
}

/// The same as [`seed_contrast`] for chrF. Given the same seeds, sentence count, `samples` and
/// `rng_seed` as a BLEU contrast, it draws the same resamples (the draws depend on nothing else), so
/// the two metrics are judged on identical seed and sentence samples.
pub fn chrf_seed_contrast(
    terms: &[Term<ChrfStats>],
    samples: usize,
    rng_seed: u64,
) -> Result<SeedContrast, EvalError> {
    contrast_with(terms, chrf_of, samples, rng_seed)
}

/// The crossed bootstrap of a contrast whose corpus score of sentences `idx` of a system is
/// `score(stats, idx)`.
fn contrast_with<S>(
    terms: &[Term<S>],
    score: impl Fn(&[S], &[usize]) -> f64,
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
    let contrast_at = |seed: usize, idx: &[usize]| -> f64 {
        terms
            .iter()
            .map(|t| t.weight * score(t.stats[seed], idx))
            .sum()
    };
    let all: Vec<usize> = (0..n).collect();
    let per_seed: Vec<f64> = (0..seeds).map(|s| contrast_at(s, &all)).collect();
    let delta = mean(&per_seed);

    let mut rng = ChaCha8Rng::seed_from_u64(rng_seed);
    let mut idx = vec![0usize; n];
    let mut resampled = Vec::with_capacity(samples);
    let mut drawn = vec![0usize; seeds];
    for _ in 0..samples {
        for d in drawn.iter_mut() {
            *d = rng.random_range(0..seeds);
        }
        // One sentence resample for every drawn seed: the crossed design.
        for x in idx.iter_mut() {
            *x = rng.random_range(0..n);
        }
        let sum: f64 = drawn.iter().map(|&seed| contrast_at(seed, &idx)).sum();
        resampled.push(sum / seeds as f64);
    }
    let centre = mean(&resampled);
    let bootstrap_se = (resampled.iter().map(|d| (d - centre).powi(2)).sum::<f64>()
        / (samples.max(2) - 1) as f64)
        .sqrt();
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
        sign_flip_p: sign_flip_p(&per_seed),
        min_detectable: min_detectable_effect(&per_seed),
        bootstrap_se,
        min_detectable_bootstrap: (Z_975 + Z_80) * bootstrap_se,
        per_seed,
        samples,
        ci: (at(0.025), at(0.975)),
        p_value: (extreme + 1) as f64 / (samples + 1) as f64,
    })
}

/// Standard normal quantiles: `Φ⁻¹(0.975)` and `Φ⁻¹(0.80)`.
const Z_975: f64 = 1.959_963_984_540_054;
const Z_80: f64 = 0.841_621_233_572_914_3;

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

/// The exact two-sided sign-flip permutation p-value of `mean(xs) = 0`, over all `2^S` sign
/// patterns; `None` for fewer than two values (or more than 20, where enumeration is too long).
pub fn sign_flip_p(xs: &[f64]) -> Option<f64> {
    let n = xs.len();
    if !(2..=20).contains(&n) {
        return None;
    }
    let observed = mean(xs).abs();
    // A relative tolerance so that the observed pattern always counts itself despite rounding.
    let tolerance = 1e-12 * xs.iter().map(|x| x.abs()).sum::<f64>().max(1e-300);
    let extreme = (0u32..1 << n)
        .filter(|signs| {
            let sum: f64 = xs
                .iter()
                .enumerate()
                .map(|(i, x)| if signs >> i & 1 == 1 { -x } else { *x })
                .sum();
            (sum / n as f64).abs() >= observed - tolerance
        })
        .count();
    Some(extreme as f64 / (1u64 << n) as f64)
}

/// `(t_{0.975, S−1} + t_{0.80, S−1}) · sd / √S`: the smallest mean effect the paired t-test over
/// `S` seeds detects at 5% (two-sided) with 80% power, given the seeds' standard deviation; `None`
/// for fewer than two values.
pub fn min_detectable_effect(xs: &[f64]) -> Option<f64> {
    let n = xs.len();
    if n < 2 {
        return None;
    }
    let m = mean(xs);
    let sd = (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let dist = StudentsT::new(0.0, 1.0, (n - 1) as f64).ok()?;
    Some((dist.inverse_cdf(0.975) + dist.inverse_cdf(0.80)) * sd / (n as f64).sqrt())
}

/// Holm's step-down adjustment of a family of p-values (Holm 1979): sorted ascending, the `k`-th
/// smallest becomes `max_{j ≤ k} min(1, (m − j + 1) · p_(j))`; returned in the input order.
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p_values[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
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
    fn sign_flip_p_values_match_enumeration_by_hand() {
        // 1, 2, 3: only all-positive and all-negative reach |mean| = 2: p = 2/8.
        assert_eq!(sign_flip_p(&[1.0, 2.0, 3.0]), Some(0.25));
        // 1, −1, 3 (mean 1, so |sum| ≥ 3 counts): the sums of the eight patterns are ±3, ±5, ±3
        // and ±1 (flipping the first, the second, both, neither), so 6 of 8 count.
        assert_eq!(sign_flip_p(&[1.0, -1.0, 3.0]), Some(0.75));
        // Five equal signs: 2/32.
        assert_eq!(sign_flip_p(&[0.5, 0.7, 0.2, 0.9, 0.4]), Some(2.0 / 32.0));
        assert_eq!(sign_flip_p(&[1.0]), None);
        assert_eq!(sign_flip_p(&[0.0, 0.0]), Some(1.0));
    }

    #[test]
    fn minimum_detectable_effect_and_holm_match_hand_computed_values() {
        // sd 1 over 3 seeds: (t_{.975,2} + t_{.8,2}) / √3 = (4.302653 + 1.060660) / 1.732051.
        let mde = min_detectable_effect(&[1.0, 2.0, 3.0]).unwrap();
        assert!(
            (mde - (4.302_653 + 1.060_660) / 3f64.sqrt()).abs() < 1e-4,
            "{mde}"
        );
        assert!(min_detectable_effect(&[1.0]).is_none());
        // Holm: p = (0.01, 0.04, 0.03, 0.5) → sorted 0.01·4, 0.03·3, 0.04·2 (raised to 0.09), 0.5·1.
        let h = holm(&[0.01, 0.04, 0.03, 0.5]);
        let want = [0.04, 0.09, 0.09, 0.5];
        for (a, b) in h.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{h:?}");
        }
        assert_eq!(holm(&[0.6, 0.9]), vec![1.0, 1.0]);
    }

    /// The crossed bootstrap's spread against a simulation with known variance components: each
    /// system's sentence scores are a sentence effect shared by every seed plus a seed offset; the
    /// contrast's variance over (seed, test-set) replications is `σ²_seed/S + σ²_sentence`-driven,
    /// and the crossed interval must be about as wide as that, not √S times narrower.
    #[test]
    fn the_crossed_interval_keeps_the_test_set_variance_of_every_seed() {
        let refs = vec![
            (0..200)
                .map(|i| format!("w{i} a b c d e f g"))
                .collect::<Vec<_>>(),
        ];
        let opts = BleuOptions::default();
        // Half the sentences are translated perfectly by the system and badly by the base; the rest
        // the other way round, for every seed: a large shared sentence effect and no seed effect.
        let hyp = |good: &dyn Fn(usize) -> bool| -> Vec<String> {
            (0..200)
                .map(|i| {
                    if good(i) {
                        refs[0][i].clone()
                    } else {
                        format!("w{i} x")
                    }
                })
                .collect()
        };
        let system = hyp(&|i| i % 2 == 0 || i % 7 == 0);
        let base = hyp(&|i| i % 2 == 1 || i % 7 == 0);
        let s = sentence_stats(&system, &refs, &opts).unwrap();
        let b = sentence_stats(&base, &refs, &opts).unwrap();
        let contrast = |seeds: usize| {
            let terms = [
                Term {
                    weight: 1.0,
                    stats: vec![s.as_slice(); seeds],
                },
                Term {
                    weight: -1.0,
                    stats: vec![b.as_slice(); seeds],
                },
            ];
            seed_contrast(&terms, &opts, 1000, 3).unwrap()
        };
        let (crossed, single) = (contrast(4), contrast(1));
        // Identical seeds: the crossed interval is the one-seed interval (same test-set variance);
        // a nested design would be about √4 = 2 times narrower.
        let width = |c: &SeedContrast| c.ci.1 - c.ci.0;
        let ratio = width(&crossed) / width(&single);
        assert!(
            (0.85..1.15).contains(&ratio),
            "crossed / single width {ratio}"
        );
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
    fn a_chrf_contrast_is_the_mean_of_the_per_seed_corpus_chrf_differences() {
        use crate::chrf::chrf_sentence_stats;
        use sacrebleu_rs::Chrf;
        let refs = vec![lines(&[
            "a dog runs",
            "two men talk",
            "the cat sleeps",
            "a red car",
        ])];
        let systems = [
            [
                lines(&["a dog runs", "two men", "the cat sleeps", "a car"]),
                lines(&["a dog ran", "two men talk", "a cat sleeps", "a red car"]),
            ],
            [
                lines(&["dog", "two men talk", "cat", "a red car"]),
                lines(&["a dog runs", "men", "the cat", "red car"]),
            ],
        ];
        let chrf = |h: &[String]| Chrf::default().corpus_score(h, &refs).score;
        let stats: Vec<Vec<Vec<ChrfStats>>> = systems
            .iter()
            .map(|seeds| {
                seeds
                    .iter()
                    .map(|h| chrf_sentence_stats(h, &refs).unwrap())
                    .collect()
            })
            .collect();
        let terms: Vec<Term<ChrfStats>> = stats
            .iter()
            .zip([1.0, -1.0])
            .map(|(per_seed, weight)| Term {
                weight,
                stats: per_seed.iter().map(|x| x.as_slice()).collect(),
            })
            .collect();
        let c = chrf_seed_contrast(&terms, 300, 7).unwrap();
        let expected: Vec<f64> = (0..2)
            .map(|seed| chrf(&systems[0][seed]) - chrf(&systems[1][seed]))
            .collect();
        for (got, want) in c.per_seed.iter().zip(&expected) {
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }
        assert!(c.ci.0 <= c.delta && c.delta <= c.ci.1);
        assert_eq!(c.samples, 300);
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
