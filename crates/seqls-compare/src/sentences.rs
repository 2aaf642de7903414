//! Sentence-level analyses: BLEU and length ratio by reference length (compare-mt's
//! `LengthSentenceBucketer`), the distribution of sentence-BLEU differences between two systems, and
//! the sentences where they differ most (compare-mt's `--compare_sentence_examples`).
//!
//! Sentence BLEU is sacreBLEU's `sentence_bleu` ([`seqls_eval::sentence_bleu`]: 13a tokens, `exp`
//! smoothing, effective order); a bucket's BLEU is corpus BLEU over its sentences, and its length
//! ratio is output over reference 13a tokens.

use seqls_eval::{BleuOptions, SentenceStats, bleu_from_stats};
use serde::{Deserialize, Serialize};

/// compare-mt's default reference-length cutoffs (words): `<10, [10,20), …, [50,60), >=60`.
pub const LENGTH_CUTOFFS: [usize; 6] = [10, 20, 30, 40, 50, 60];

/// Cutoffs of sentence-BLEU differences (system − baseline, BLEU points), each bucket `[lo, hi)`;
/// the difference 0 has its own bucket.
pub const DIFF_CUTOFFS: [f64; 6] = [-20.0, -10.0, -1e-9, 1e-9, 10.0, 20.0];

/// Names of the [`DIFF_CUTOFFS`] buckets.
pub const DIFF_LABELS: [&str; 7] = [
    "< −20",
    "[−20, −10)",
    "[−10, 0)",
    "0",
    "(0, 10)",
    "[10, 20)",
    "≥ 20",
];

/// The bucket of a reference with `words` whitespace-separated words.
pub fn length_bucket(words: usize) -> usize {
    LENGTH_CUTOFFS
        .iter()
        .position(|&cut| words < cut)
        .unwrap_or(LENGTH_CUTOFFS.len())
}

/// compare-mt's names of the length buckets.
pub fn length_labels() -> Vec<String> {
    let mut labels = vec![format!("<{}", LENGTH_CUTOFFS[0])];
    for w in LENGTH_CUTOFFS.windows(2) {
        labels.push(format!("[{},{})", w[0], w[1]));
    }
    labels.push(format!(">={}", LENGTH_CUTOFFS[LENGTH_CUTOFFS.len() - 1]));
    labels
}

/// One system's scores over the sentences of one length bucket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LengthBucket {
    pub sentences: usize,
    pub bleu: f64,
    /// Output / reference 13a tokens.
    pub length_ratio: f64,
}

/// Corpus BLEU of the sentences `idx` from their statistics.
pub fn bleu_of(stats: &[SentenceStats], idx: &[usize]) -> f64 {
    // Cannot fail: the default options are valid.
    bleu_from_stats(stats, idx, &BleuOptions::default()).unwrap_or(f64::NAN)
}

/// Per length bucket (`buckets[i]`: the bucket of sentence `i`), BLEU and length ratio of a system
/// over the sentences `sample` (repeats allowed: a bootstrap resample).
pub fn length_buckets(
    stats: &[SentenceStats],
    buckets: &[usize],
    sample: &[usize],
) -> Vec<LengthBucket> {
    (0..=LENGTH_CUTOFFS.len())
        .map(|b| {
            let idx: Vec<usize> = sample
                .iter()
                .copied()
                .filter(|&i| buckets[i] == b)
                .collect();
            let (out, reference) = idx.iter().fold((0, 0), |(o, r), &i| {
                (o + stats[i].sys_len, r + stats[i].ref_len)
            });
            LengthBucket {
                sentences: idx.len(),
                bleu: if idx.is_empty() {
                    0.0
                } else {
                    bleu_of(stats, &idx)
                },
                length_ratio: if reference == 0 {
                    0.0
                } else {
                    out as f64 / reference as f64
                },
            }
        })
        .collect()
}

/// How many sentences fall in each [`DIFF_CUTOFFS`] bucket of `system − baseline` sentence BLEU.
pub fn diff_histogram(baseline: &[f64], system: &[f64]) -> Vec<usize> {
    let mut counts = vec![0; DIFF_LABELS.len()];
    for (b, s) in baseline.iter().zip(system) {
        let d = s - b;
        let bucket = DIFF_CUTOFFS
            .iter()
            .position(|&cut| d < cut)
            .unwrap_or(DIFF_CUTOFFS.len());
        counts[bucket] += 1;
    }
    counts
}

/// The `k` sentences where `system` beats `baseline` by most in sentence BLEU, and the `k` where it
/// loses by most (sentence indices, largest difference first; ties by index).
pub fn largest_differences(baseline: &[f64], system: &[f64], k: usize) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..baseline.len()).collect();
    let diff = |i: usize| system[i] - baseline[i];
    order.sort_by(|&a, &b| diff(b).total_cmp(&diff(a)).then(a.cmp(&b)));
    let better = order
        .iter()
        .copied()
        .take_while(|&i| diff(i) > 0.0)
        .take(k)
        .collect();
    let worse = order
        .iter()
        .rev()
        .copied()
        .take_while(|&i| diff(i) < 0.0)
        .take(k)
        .collect();
    (better, worse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_labels_and_buckets() {
        assert_eq!(
            length_labels(),
            [
                "<10", "[10,20)", "[20,30)", "[30,40)", "[40,50)", "[50,60)", ">=60"
            ]
        );
        assert_eq!(length_bucket(9), 0);
        assert_eq!(length_bucket(10), 1);
        assert_eq!(length_bucket(75), 6);
    }

    #[test]
    fn differences_are_bucketed_and_ranked() {
        let base = [50.0, 10.0, 30.0, 40.0];
        let sys = [50.0, 35.0, 25.0, 10.0];
        assert_eq!(diff_histogram(&base, &sys), [1, 0, 1, 1, 0, 0, 1]);
        let (better, worse) = largest_differences(&base, &sys, 5);
        assert_eq!(better, [1]);
        assert_eq!(worse, [3, 2]);
    }
}
