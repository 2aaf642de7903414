//! Paired bootstrap over test sentences for bucketed scores (Koehn 2004): each resample draws the
//! sentence indices with replacement (seeded), and every bucket's score of both systems is recomputed
//! on the drawn sentences, so the buckets of one resample are consistent with each other.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Resamples per comparison.
pub const SAMPLES: usize = 1000;
/// Seed of the resampling.
pub const SEED: u64 = 12345;

/// A difference system − baseline of one bucketed score.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Delta {
    pub observed: f64,
    /// 2.5th and 97.5th percentiles of the resampled differences.
    pub ci: (f64, f64),
    /// Two-sided p-value with sacreBLEU's centring:
    /// `(1 + #{|d_s − mean(d)| ≥ |d_obs|}) / (1 + samples)`.
    pub p: f64,
}

impl Delta {
    /// Whether the interval excludes zero and p < 0.05.
    pub fn detected(&self) -> bool {
        self.p < 0.05 && (self.ci.0 > 0.0 || self.ci.1 < 0.0)
    }
}

/// Per bucket, the paired bootstrap of `score(system) − score(baseline)`, where
/// `score(which, idx)` gives every bucket's score of system `which` (0: baseline, 1: system) on the
/// sentences `idx`.
pub fn bucket_deltas(
    sentences: usize,
    buckets: usize,
    score: impl Fn(usize, &[usize]) -> Vec<f64>,
) -> Vec<Delta> {
    let all: Vec<usize> = (0..sentences).collect();
    let (base, sys) = (score(0, &all), score(1, &all));
    let observed: Vec<f64> = (0..buckets).map(|b| sys[b] - base[b]).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut diffs = vec![Vec::with_capacity(SAMPLES); buckets];
    let mut idx = vec![0usize; sentences];
    for _ in 0..SAMPLES {
        for i in idx.iter_mut() {
            *i = rng.random_range(0..sentences);
        }
        let (base, sys) = (score(0, &idx), score(1, &idx));
        for b in 0..buckets {
            diffs[b].push(sys[b] - base[b]);
        }
    }
    observed
        .iter()
        .zip(diffs.iter_mut())
        .map(|(&observed, d)| {
            d.sort_by(f64::total_cmp);
            let mean = d.iter().sum::<f64>() / d.len() as f64;
            let extreme = d
                .iter()
                .filter(|&&x| (x - mean).abs() >= observed.abs())
                .count();
            let at = |q: f64| d[((q * d.len() as f64) as usize).min(d.len() - 1)];
            Delta {
                observed,
                ci: (at(0.025), at(0.975)),
                p: (1 + extreme) as f64 / (1 + SAMPLES) as f64,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_gain_is_detected_and_no_difference_is_not() {
        // Per sentence: baseline scores 1, the system 2 (bucket 0) or 1 (bucket 1).
        let deltas = bucket_deltas(50, 2, |which, idx| {
            let n = idx.len() as f64;
            vec![idx.len() as f64 * (1.0 + which as f64) / n, 1.0]
        });
        assert_eq!(deltas[0].observed, 1.0);
        assert!(deltas[0].detected());
        assert_eq!(deltas[1].observed, 0.0);
        assert!(!deltas[1].detected());
        assert_eq!(deltas[1].p, 1.0);
    }

    #[test]
    fn noise_around_zero_has_an_interval_across_zero() {
        let noise: Vec<f64> = (0..200)
            .map(|i| ((i * 37 % 17) as f64 - 8.0) / 8.0)
            .collect();
        let deltas = bucket_deltas(200, 1, |which, idx| {
            let mean = idx.iter().map(|&i| noise[i]).sum::<f64>() / idx.len() as f64;
            vec![if which == 1 { mean } else { 0.0 }]
        });
        assert!(
            deltas[0].ci.0 < 0.0 && deltas[0].ci.1 > 0.0,
            "{:?}",
            deltas[0]
        );
        assert!(!deltas[0].detected());
    }
}
