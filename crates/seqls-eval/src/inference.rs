//! Calibration of what the decoder produced (Wang et al. 2020, "On the Inference Calibration of
//! Neural Machine Translation"), and of a model against a known true distribution (the synthetic
//! corpus's oracle).
//!
//! Inference calibration: align each hypothesis to its reference with token-level Levenshtein edit
//! distance (unit costs for insertion, deletion and substitution). A hypothesis token is correct when
//! the alignment maps it to an identical reference token; its confidence is the probability the
//! decoder gave it. ECE etc. are then [`calibration`](crate::calibration::calibration) of those pairs.
//!
//! Oracle calibration: for each reference token `i`, the model's probability `p_i` (teacher forced)
//! and the true probability `q_i` under the generator. Reported: the mean absolute gap
//! `mean |p_i − q_i|` and `ECE_oracle = Σ_b n_b/N · |mean_b(q) − mean_b(p)|` over equal-width bins of `p`
//! (bin `b` holds `p ∈ (b/M, (b+1)/M]`), i.e. the usual ECE with the empirical accuracy replaced by the
//! true probability.

use crate::calibration::bin_index;
use serde::{Deserialize, Serialize};

/// For each token of `hypothesis`, whether a minimum-edit-distance alignment to `reference` matches it
/// with an identical token. Among optimal alignments, the backtrace prefers a match/substitution, then
/// a deletion of a hypothesis token, then an insertion of a reference token.
pub fn aligned_matches<T: PartialEq>(hypothesis: &[T], reference: &[T]) -> Vec<bool> {
    let (n, m) = (hypothesis.len(), reference.len());
    // d[i][j]: edit distance between hypothesis[..i] and reference[..j].
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let sub = d[i - 1][j - 1] + usize::from(hypothesis[i - 1] != reference[j - 1]);
            d[i][j] = sub.min(d[i - 1][j] + 1).min(d[i][j - 1] + 1);
        }
    }
    let mut correct = vec![false; n];
    let (mut i, mut j) = (n, m);
    while i > 0 {
        if j > 0 {
            let same = hypothesis[i - 1] == reference[j - 1];
            if d[i][j] == d[i - 1][j - 1] + usize::from(!same) {
                correct[i - 1] = same;
                i -= 1;
                j -= 1;
                continue;
            }
            if d[i][j] == d[i][j - 1] + 1 && d[i][j] != d[i - 1][j] + 1 {
                j -= 1;
                continue;
            }
        }
        i -= 1;
    }
    correct
}

/// Model probabilities against true probabilities (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OracleCalibration {
    pub tokens: usize,
    /// `mean |p − q|`.
    pub mean_abs_gap: f64,
    /// `Σ_b n_b/N · |mean_b(q) − mean_b(p)|`, bins of `p`.
    pub ece: f64,
    pub num_bins: usize,
    /// Mean model probability of the reference tokens.
    pub mean_model_prob: f64,
    /// Mean true probability of the reference tokens.
    pub mean_true_prob: f64,
}

/// Computes [`OracleCalibration`] from `(model_prob, true_prob)` per reference token.
pub fn oracle_calibration(model: &[f64], truth: &[f64], num_bins: usize) -> OracleCalibration {
    // Cannot fail: callers pass matching lengths, and `eval --bins` is parsed as 1..=10000.
    assert_eq!(
        model.len(),
        truth.len(),
        "one true probability per model probability"
    );
    assert!(num_bins > 0, "at least one bin");
    let n = model.len();
    let total = n.max(1) as f64;
    let (mut p_sum, mut q_sum, mut count) = (
        vec![0.0; num_bins],
        vec![0.0; num_bins],
        vec![0usize; num_bins],
    );
    for (&p, &q) in model.iter().zip(truth) {
        let Some(b) = bin_index(p, num_bins) else {
            continue;
        };
        p_sum[b] += p;
        q_sum[b] += q;
        count[b] += 1;
    }
    let ece = (0..num_bins)
        .filter(|&b| count[b] > 0)
        .map(|b| count[b] as f64 / total * ((q_sum[b] - p_sum[b]) / count[b] as f64).abs())
        .sum();
    OracleCalibration {
        tokens: n,
        mean_abs_gap: model
            .iter()
            .zip(truth)
            .map(|(p, q)| (p - q).abs())
            .sum::<f64>()
            / total,
        ece,
        num_bins,
        mean_model_prob: model.iter().sum::<f64>() / total,
        mean_true_prob: truth.iter().sum::<f64>() / total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-checked alignments; with two optimal choices ("a b b c"), the backtrace (from the end,
    /// diagonal first) matches the later "b".
    #[test]
    fn alignment_marks_tokens_that_an_optimal_alignment_matches() {
        let cases: [(&str, &str, &[bool]); 7] = [
            ("a b c", "a b c", &[true, true, true]),
            ("a x c", "a b c", &[true, false, true]),
            ("a c", "a b c", &[true, true]),
            ("a b b c", "a b c", &[true, false, true, true]),
            ("", "a b", &[]),
            ("a b", "", &[false, false]),
            ("c b a", "a b c", &[false, true, false]),
        ];
        for (hyp, reference, want) in cases {
            let h: Vec<&str> = hyp.split_whitespace().collect();
            let r: Vec<&str> = reference.split_whitespace().collect();
            assert_eq!(aligned_matches(&h, &r), want, "{hyp:?} vs {reference:?}");
        }
    }

    #[test]
    fn oracle_calibration_of_a_perfect_and_an_overconfident_model() {
        let q = [0.5, 0.5, 0.2, 1.0];
        let perfect = oracle_calibration(&q, &q, 10);
        assert_eq!(perfect.mean_abs_gap, 0.0);
        assert!(perfect.ece.abs() < 1e-12);
        let over = oracle_calibration(&[0.9, 0.9, 0.6, 1.0], &q, 10);
        // |0.4| + |0.4| + |0.4| + 0 over 4 tokens.
        assert!((over.mean_abs_gap - 0.3).abs() < 1e-12);
        // Bins: 0.9 (two tokens: mean p 0.9, mean q 0.5), 0.6 (0.6 vs 0.2), 1.0 (equal).
        assert!((over.ece - (2.0 * 0.4 + 0.4) / 4.0).abs() < 1e-12);
    }
}
