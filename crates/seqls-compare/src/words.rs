//! Word accuracy by training frequency, as compare-mt computes it (`--compare_word_accuracies`,
//! `FreqWordBucketer`, Neubig et al. 2019), and word confidence by the same buckets.
//!
//! Words are whitespace-separated tokens of the detokenised text (compare-mt splits its input
//! files the same way), case-sensitive. A word's bucket is its count in the training target side,
//! cut at [`FREQ_CUTOFFS`]. Matching: the k-th occurrence of a word in the output matches when the
//! reference holds that word at least k times. Per bucket, with `m` matches, `r` reference words and
//! `o` output words: recall `m / r`, precision `m / o`, F-measure `2PR / (P + R)` (all 0 when `m = 0`).
//!
//! Word confidence: the probability the decoder gave the word (the product of its subword
//! probabilities, `</s>` not included), against whether the word matched; per bucket the
//! expected calibration error over [`seqls_eval::calibration::DEFAULT_BINS`] equal-width bins.

use seqls_eval::calibration::{DEFAULT_BINS, calibration};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// compare-mt's default frequency cutoffs: buckets `<1, 1, 2, 3, 4, [5,10), [10,100), [100,1000), >=1000`.
pub const FREQ_CUTOFFS: [usize; 8] = [1, 2, 3, 4, 5, 10, 100, 1000];

/// Counts of each word in a corpus (the training targets).
#[derive(Debug, Clone, Default)]
pub struct WordCounts(HashMap<String, usize>);

impl WordCounts {
    /// Counts the whitespace-separated words of `lines`.
    pub fn from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> WordCounts {
        let mut counts = HashMap::new();
        for line in lines {
            for word in line.split_whitespace() {
                *counts.entry(word.to_string()).or_insert(0) += 1;
            }
        }
        WordCounts(counts)
    }

    pub fn get(&self, word: &str) -> usize {
        self.0.get(word).copied().unwrap_or(0)
    }

    /// The bucket (index into [`bucket_labels`]) of `word`.
    pub fn bucket(&self, word: &str) -> usize {
        let count = self.get(word);
        FREQ_CUTOFFS
            .iter()
            .position(|&cut| count < cut)
            .unwrap_or(FREQ_CUTOFFS.len())
    }
}

/// compare-mt's bucket names: `<1`, `1`, …, `[5,10)`, …, `>=1000`.
pub fn bucket_labels() -> Vec<String> {
    let mut labels = Vec::new();
    for (i, &cut) in FREQ_CUTOFFS.iter().enumerate() {
        labels.push(if i == 0 {
            format!("<{cut}")
        } else if cut - 1 == FREQ_CUTOFFS[i - 1] {
            format!("{}", cut - 1)
        } else {
            format!("[{},{cut})", FREQ_CUTOFFS[i - 1])
        });
    }
    labels.push(format!(">={}", FREQ_CUTOFFS[FREQ_CUTOFFS.len() - 1]));
    labels
}

/// For each output word, whether it matches the reference (compare-mt's `_calc_trg_matches`).
pub fn word_matches(reference: &[&str], output: &[&str]) -> Vec<bool> {
    let mut available: HashMap<&str, usize> = HashMap::new();
    for &w in reference {
        *available.entry(w).or_insert(0) += 1;
    }
    output
        .iter()
        .map(|w| match available.get_mut(w) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        })
        .collect()
}

/// One sentence's counts per bucket: reference words, output words, matched output words.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BucketCounts {
    pub reference: Vec<u32>,
    pub output: Vec<u32>,
    pub matched: Vec<u32>,
}

impl BucketCounts {
    fn zeros() -> BucketCounts {
        let n = FREQ_CUTOFFS.len() + 1;
        BucketCounts {
            reference: vec![0; n],
            output: vec![0; n],
            matched: vec![0; n],
        }
    }

    /// The counts of one sentence.
    pub fn of(counts: &WordCounts, reference: &str, output: &str) -> BucketCounts {
        let reference: Vec<&str> = reference.split_whitespace().collect();
        let output: Vec<&str> = output.split_whitespace().collect();
        let mut c = BucketCounts::zeros();
        for w in &reference {
            c.reference[counts.bucket(w)] += 1;
        }
        for (w, matched) in output.iter().zip(word_matches(&reference, &output)) {
            let b = counts.bucket(w);
            c.output[b] += 1;
            c.matched[b] += u32::from(matched);
        }
        c
    }

    /// The sum over the sentences `idx` (repeats allowed).
    pub fn sum(all: &[BucketCounts], idx: impl IntoIterator<Item = usize>) -> BucketCounts {
        let mut total = BucketCounts::zeros();
        for i in idx {
            for b in 0..total.reference.len() {
                total.reference[b] += all[i].reference[b];
                total.output[b] += all[i].output[b];
                total.matched[b] += all[i].matched[b];
            }
        }
        total
    }

    /// F-measure of bucket `b` (0 when nothing matched).
    pub fn f_measure(&self, b: usize) -> f64 {
        let m = self.matched[b] as f64;
        if m == 0.0 {
            return 0.0;
        }
        let (recall, precision) = (m / self.reference[b] as f64, m / self.output[b] as f64);
        2.0 * precision * recall / (precision + recall)
    }
}

/// One system's word accuracy in one bucket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WordBucket {
    pub matched: u32,
    pub reference: u32,
    pub output: u32,
    pub recall: f64,
    pub precision: f64,
    pub f_measure: f64,
}

/// Per bucket, the totals of `counts` as compare-mt reports them.
pub fn word_buckets(counts: &BucketCounts) -> Vec<WordBucket> {
    (0..counts.reference.len())
        .map(|b| {
            let (m, r, o) = (counts.matched[b], counts.reference[b], counts.output[b]);
            let (recall, precision) = if m == 0 {
                (0.0, 0.0)
            } else {
                (m as f64 / r as f64, m as f64 / o as f64)
            };
            WordBucket {
                matched: m,
                reference: r,
                output: o,
                recall,
                precision,
                f_measure: counts.f_measure(b),
            }
        })
        .collect()
}

/// One system's word confidence in one bucket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConfidenceBucket {
    pub words: usize,
    /// Mean word probability.
    pub mean_confidence: f64,
    /// Share of the words that matched the reference.
    pub accuracy: f64,
    /// Expected calibration error over equal-width bins (0 when the bucket is empty).
    pub ece: f64,
}

/// Word confidence per frequency bucket of one system: `probs[i]` holds the probability of each
/// word of `outputs[i]` (an empty list where they are unknown; such sentences are left out).
pub fn confidence_buckets(
    counts: &WordCounts,
    references: &[String],
    outputs: &[String],
    probs: &[Vec<f64>],
) -> Vec<ConfidenceBucket> {
    let n = FREQ_CUTOFFS.len() + 1;
    let (mut conf, mut correct) = (vec![Vec::new(); n], vec![Vec::new(); n]);
    for ((reference, output), p) in references.iter().zip(outputs).zip(probs) {
        let output: Vec<&str> = output.split_whitespace().collect();
        if p.len() != output.len() {
            continue;
        }
        let reference: Vec<&str> = reference.split_whitespace().collect();
        for ((w, matched), &prob) in output.iter().zip(word_matches(&reference, &output)).zip(p) {
            let b = counts.bucket(w);
            conf[b].push(prob);
            correct[b].push(matched);
        }
    }
    conf.iter()
        .zip(&correct)
        .map(|(c, k)| {
            if c.is_empty() {
                return ConfidenceBucket {
                    words: 0,
                    mean_confidence: 0.0,
                    accuracy: 0.0,
                    ece: 0.0,
                };
            }
            let cal = calibration(c, k, DEFAULT_BINS);
            ConfidenceBucket {
                words: c.len(),
                mean_confidence: cal.mean_confidence,
                accuracy: cal.accuracy,
                ece: cal.ece,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_compare_mts() {
        assert_eq!(
            bucket_labels(),
            [
                "<1",
                "1",
                "2",
                "3",
                "4",
                "[5,10)",
                "[10,100)",
                "[100,1000)",
                ">=1000"
            ]
        );
    }

    #[test]
    fn the_kth_occurrence_matches_only_if_the_reference_has_k() {
        let m = word_matches(&["a", "b", "a"], &["a", "a", "a", "c", "b"]);
        assert_eq!(m, [true, true, false, false, true]);
    }

    #[test]
    fn counts_and_f_measure_by_hand() {
        let counts = WordCounts::from_lines(["a a b", "a c"]); // a: 3, b: 1, c: 1
        let c = BucketCounts::of(&counts, "a b z", "a z z b");
        // buckets: z → <1 (0), b → 1 (1), a → 3 (3)
        assert_eq!(c.reference[0], 1);
        assert_eq!(c.output[0], 2);
        assert_eq!(c.matched[0], 1);
        let f = c.f_measure(0); // P = 1/2, R = 1
        assert!((f - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(c.f_measure(2), 0.0);
        assert_eq!((c.matched[3], c.reference[3], c.output[3]), (1, 1, 1));
    }
}
