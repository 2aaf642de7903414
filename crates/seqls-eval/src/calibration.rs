//! Token-level calibration of the top-class confidence.
//!
//! Input: for each evaluated token, the confidence `c ∈ [0, 1]` of the predicted class and whether the
//! prediction is correct. With `M` equal-width bins, bin `b` (0-based) holds confidences in
//! `(b/M, (b+1)/M]` (a confidence of exactly 0 falls in no bin); `acc_b` and `conf_b` are the mean
//! correctness and confidence of its `n_b` tokens (0 when empty).
//! - `ECE = Σ_b n_b/N · |acc_b − conf_b|` and `MCE = max_b |acc_b − conf_b|` (empty bins give 0),
//! - adaptive ECE: the same sum over `M` equal-mass bins, made by sorting the confidences and splitting
//!   them into `M` contiguous chunks whose sizes differ by at most one (larger chunks first, as
//!   `numpy.array_split`),
//! - Brier score of the top class `mean((c − correct)²)`, accuracy and mean confidence.
//!
//! All values lie in [0, 1]; `N` counts every token given, including any with confidence 0.

/// The number of equal-width bins of `seqls eval` and of every sweep evaluation (Guo et al. 2017).
pub const DEFAULT_BINS: usize = 15;

use serde::{Deserialize, Serialize};

/// Calibration metrics of a set of predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub tokens: usize,
    pub accuracy: f64,
    pub mean_confidence: f64,
    pub ece: f64,
    pub mce: f64,
    pub adaptive_ece: f64,
    pub brier_top: f64,
    pub num_bins: usize,
    /// Per equal-width bin: mean correctness, mean confidence, count.
    pub bin_accuracy: Vec<f64>,
    pub bin_confidence: Vec<f64>,
    pub bin_count: Vec<usize>,
}

/// The equal-width bin of confidence `c` among `num_bins`: bin `b` holds `(b/M, (b+1)/M]`, so
/// `b = ceil(c·M) − 1`; a confidence of 0 (or below) falls in no bin.
pub fn bin_index(c: f64, num_bins: usize) -> Option<usize> {
    (c > 0.0).then(|| ((c * num_bins as f64).ceil() as usize).clamp(1, num_bins) - 1)
}

/// Computes [`Calibration`] with `num_bins` bins. `confidence` and `correct` have one entry per token.
pub fn calibration(confidence: &[f64], correct: &[bool], num_bins: usize) -> Calibration {
    // Cannot fail: callers pass one flag per confidence, and `eval --bins` is parsed as 1..=10000.
    assert_eq!(
        confidence.len(),
        correct.len(),
        "one correctness flag per confidence"
    );
    assert!(num_bins > 0, "at least one bin");
    let n = confidence.len();
    let (mut acc_sum, mut conf_sum, mut count) = (
        vec![0.0; num_bins],
        vec![0.0; num_bins],
        vec![0usize; num_bins],
    );
    for (&c, &ok) in confidence.iter().zip(correct) {
        let Some(b) = bin_index(c, num_bins) else {
            continue;
        };
        acc_sum[b] += ok as u8 as f64;
        conf_sum[b] += c;
        count[b] += 1;
    }
    let mean = |s: f64, k: usize| if k == 0 { 0.0 } else { s / k as f64 };
    let bin_accuracy: Vec<f64> = (0..num_bins).map(|b| mean(acc_sum[b], count[b])).collect();
    let bin_confidence: Vec<f64> = (0..num_bins).map(|b| mean(conf_sum[b], count[b])).collect();
    let gaps: Vec<f64> = (0..num_bins)
        .map(|b| (bin_accuracy[b] - bin_confidence[b]).abs())
        .collect();
    let total = n.max(1) as f64;
    let ece = (0..num_bins)
        .map(|b| count[b] as f64 / total * gaps[b])
        .sum();
    let mce = gaps.iter().cloned().fold(0.0, f64::max);

    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| confidence[a].total_cmp(&confidence[b]));
    let mut adaptive_ece = 0.0;
    let mut start = 0;
    for b in 0..num_bins {
        let size = n / num_bins + usize::from(b < n % num_bins);
        let chunk = &order[start..start + size];
        start += size;
        if chunk.is_empty() {
            continue;
        }
        let acc = chunk.iter().map(|&i| correct[i] as u8 as f64).sum::<f64>() / size as f64;
        let conf = chunk.iter().map(|&i| confidence[i]).sum::<f64>() / size as f64;
        adaptive_ece += size as f64 / total * (acc - conf).abs();
    }

    Calibration {
        tokens: n,
        accuracy: correct.iter().filter(|&&c| c).count() as f64 / total,
        mean_confidence: confidence.iter().sum::<f64>() / total,
        ece,
        mce,
        adaptive_ece,
        brier_top: confidence
            .iter()
            .zip(correct)
            .map(|(&c, &ok)| (c - ok as u8 as f64).powi(2))
            .sum::<f64>()
            / total,
        num_bins,
        bin_accuracy,
        bin_confidence,
        bin_count: count,
    }
}

/// The calibration of several token sets together (e.g. one model per seed), from their bins:
/// bin counts add up, bin accuracy and confidence are count-weighted means, and accuracy, mean
/// confidence, Brier score, ECE and MCE equal those of [`calibration`] on the concatenated tokens.
/// The adaptive ECE needs the tokens themselves; here it is the token-weighted mean of the parts'.
/// `None` when `parts` is empty or the bin counts differ.
pub fn pool(parts: &[&Calibration]) -> Option<Calibration> {
    let num_bins = parts.first()?.num_bins;
    if parts.iter().any(|p| p.num_bins != num_bins) {
        return None;
    }
    let tokens: usize = parts.iter().map(|p| p.tokens).sum();
    let total = tokens.max(1) as f64;
    let weighted = |f: fn(&Calibration) -> f64| {
        parts.iter().map(|p| p.tokens as f64 * f(p)).sum::<f64>() / total
    };
    let mut bin_count = vec![0usize; num_bins];
    let (mut acc_sum, mut conf_sum) = (vec![0.0; num_bins], vec![0.0; num_bins]);
    for p in parts {
        for b in 0..num_bins {
            let k = p.bin_count[b];
            bin_count[b] += k;
            acc_sum[b] += k as f64 * p.bin_accuracy[b];
            conf_sum[b] += k as f64 * p.bin_confidence[b];
        }
    }
    let mean = |s: f64, k: usize| if k == 0 { 0.0 } else { s / k as f64 };
    let bin_accuracy: Vec<f64> = (0..num_bins)
        .map(|b| mean(acc_sum[b], bin_count[b]))
        .collect();
    let bin_confidence: Vec<f64> = (0..num_bins)
        .map(|b| mean(conf_sum[b], bin_count[b]))
        .collect();
    let gaps: Vec<f64> = (0..num_bins)
        .map(|b| (bin_accuracy[b] - bin_confidence[b]).abs())
        .collect();
    Some(Calibration {
        tokens,
        accuracy: weighted(|p| p.accuracy),
        mean_confidence: weighted(|p| p.mean_confidence),
        ece: (0..num_bins)
            .map(|b| bin_count[b] as f64 / total * gaps[b])
            .sum(),
        mce: gaps.iter().cloned().fold(0.0, f64::max),
        adaptive_ece: weighted(|p| p.adaptive_ece),
        brier_top: weighted(|p| p.brier_top),
        num_bins,
        bin_accuracy,
        bin_confidence,
        bin_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::path::PathBuf;

    /// `$SEQLS_GOLDEN_DIR/calibration.json`, else the project's copy; every field to 1e-9.
    #[test]
    fn matches_golden_calibration_vectors() {
        let dir = std::env::var_os("SEQLS_GOLDEN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden")
            });
        let path = dir.join("calibration.json");
        let golden: Value = serde_json::from_str(
            &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
        .unwrap();
        let cases = golden["cases"].as_array().unwrap();
        assert!(!cases.is_empty());
        let f = |v: &Value| v.as_f64().unwrap();
        let list = |v: &Value| v.as_array().unwrap().iter().map(f).collect::<Vec<f64>>();
        for (i, case) in cases.iter().enumerate() {
            let conf = list(&case["confidence"]);
            let correct: Vec<bool> = case["correct"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() != 0.0)
                .collect();
            let m = case["num_bins"].as_u64().unwrap() as usize;
            let got = calibration(&conf, &correct, m);
            let close = |a: f64, b: f64, what: &str| {
                assert!((a - b).abs() <= 1e-9, "case {i} {what}: {a} vs {b}")
            };
            for (name, value) in [
                ("ece", got.ece),
                ("mce", got.mce),
                ("adaptive_ece", got.adaptive_ece),
                ("accuracy", got.accuracy),
                ("mean_confidence", got.mean_confidence),
                ("brier_top", got.brier_top),
            ] {
                close(value, f(&case[name]), name);
            }
            for (b, want) in list(&case["bin_accuracy"]).iter().enumerate() {
                close(got.bin_accuracy[b], *want, "bin_accuracy");
            }
            for (b, want) in list(&case["bin_confidence"]).iter().enumerate() {
                close(got.bin_confidence[b], *want, "bin_confidence");
            }
            let counts: Vec<usize> = list(&case["bin_count"])
                .iter()
                .map(|&x| x as usize)
                .collect();
            assert_eq!(got.bin_count, counts, "case {i} bin_count");
        }
    }

    #[test]
    fn pooled_bins_equal_the_calibration_of_the_concatenated_tokens() {
        let (c1, k1) = (
            vec![0.95, 0.9, 0.55, 0.3, 0.72],
            vec![true, false, true, false, true],
        );
        let (c2, k2) = (vec![0.99, 0.61, 0.64, 0.1], vec![true, true, false, false]);
        let (a, b) = (calibration(&c1, &k1, 10), calibration(&c2, &k2, 10));
        let all = calibration(&[c1, c2].concat(), &[k1, k2].concat(), 10);
        let pooled = pool(&[&a, &b]).unwrap();
        assert_eq!(pooled.tokens, all.tokens);
        assert_eq!(pooled.bin_count, all.bin_count);
        for (x, y) in [
            (pooled.ece, all.ece),
            (pooled.mce, all.mce),
            (pooled.accuracy, all.accuracy),
            (pooled.mean_confidence, all.mean_confidence),
            (pooled.brier_top, all.brier_top),
        ] {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
        for b in 0..10 {
            assert!((pooled.bin_accuracy[b] - all.bin_accuracy[b]).abs() < 1e-12);
            assert!((pooled.bin_confidence[b] - all.bin_confidence[b]).abs() < 1e-12);
        }
        assert!(pool(&[]).is_none());
        assert!(pool(&[&a, &calibration(&[0.5], &[true], 5)]).is_none());
    }
}
