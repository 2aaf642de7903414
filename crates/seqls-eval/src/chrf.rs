//! Per-sentence chrF statistics, so that chrF can be resampled like BLEU.
//!
//! chrF (Popović 2015) with sacreBLEU 2.6.0's defaults: character n-grams of orders 1..6 with
//! whitespace removed, no word n-grams, β = 2, no ε-smoothing. For each order `n` a sentence has
//! three counts: `hyp_n` (character n-grams of the hypothesis; 0 when the reference has none of that
//! order), `ref_n` and `match_n = Σ_g min(hyp_n(g), ref_n(g))`. The corpus score of any set of
//! sentences follows from the sums of these counts: with `P_n = match_n / hyp_n`, `R_n = match_n /
//! ref_n` averaged over the orders where both totals are positive (`P̄`, `R̄`),
//! `chrF = 100 · (1 + β²) · P̄ · R̄ / (β² · P̄ + R̄)` (0 when `P̄ + R̄ = 0`).
//!
//! Written here because `sacrebleu-rs` 0.1.0 keeps its per-sentence chrF statistics private (only
//! corpus and sentence scores are public). The port follows that crate line by line
//! (`extract_all_char_ngrams`, `_get_match_statistics`, `_compute_f_score`); the tests check that
//! the score from summed statistics equals `Chrf::corpus_score` exactly.

use crate::bleu::check_lengths;
use crate::error::EvalError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Character n-gram orders of chrF (sacreBLEU's `CHRF.CHAR_ORDER`).
pub const CHAR_ORDER: usize = 6;
/// β of chrF: recall weighs β² times precision.
const BETA: f64 = 2.0;

/// The chrF statistics of one sentence: per order 1..=6, hypothesis, reference and matched
/// character n-grams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChrfStats {
    pub hyp: [i64; CHAR_ORDER],
    pub reference: [i64; CHAR_ORDER],
    pub matched: [i64; CHAR_ORDER],
}

/// Character n-grams of orders 1..=6 of `line` with its whitespace removed.
fn char_ngrams(line: &str) -> Vec<HashMap<String, i64>> {
    let chars: Vec<char> = line.split_whitespace().flat_map(str::chars).collect();
    (1..=CHAR_ORDER)
        .map(|n| {
            let mut counts = HashMap::new();
            for gram in chars.windows(n) {
                *counts.entry(gram.iter().collect()).or_insert(0) += 1;
            }
            counts
        })
        .collect()
}

fn stats_against(hyp: &[HashMap<String, i64>], reference: &[HashMap<String, i64>]) -> ChrfStats {
    let mut s = ChrfStats {
        hyp: [0; CHAR_ORDER],
        reference: [0; CHAR_ORDER],
        matched: [0; CHAR_ORDER],
    };
    for n in 0..CHAR_ORDER {
        let (h, r) = (&hyp[n], &reference[n]);
        let hyp_total: i64 = h.values().sum();
        s.hyp[n] = if r.is_empty() { 0 } else { hyp_total };
        s.reference[n] = r.values().sum();
        s.matched[n] = h
            .iter()
            .map(|(g, &c)| r.get(g).map_or(0, |&rc| c.min(rc)))
            .sum();
    }
    s
}

/// chrF (0–100) of summed statistics, `_compute_f_score` without ε-smoothing.
fn f_score(
    hyp: &[i64; CHAR_ORDER],
    reference: &[i64; CHAR_ORDER],
    matched: &[i64; CHAR_ORDER],
) -> f64 {
    let (mut precision, mut recall, mut orders) = (0.0, 0.0, 0usize);
    for n in 0..CHAR_ORDER {
        if hyp[n] > 0 && reference[n] > 0 {
            precision += matched[n] as f64 / hyp[n] as f64;
            recall += matched[n] as f64 / reference[n] as f64;
            orders += 1;
        }
    }
    if orders > 0 {
        precision /= orders as f64;
        recall /= orders as f64;
    }
    let factor = BETA * BETA;
    if precision + recall == 0.0 {
        0.0
    } else {
        // The crate's order of operations, so that the scores agree to the last bit.
        let f = (1.0 + factor) * precision * recall / (factor * precision + recall);
        100.0 * f
    }
}

/// The statistics of `hyps[i]` against `refs[r][i]`; with several references, those of the reference
/// with the highest sentence chrF (the first on ties), as sacreBLEU chooses.
pub fn chrf_sentence_stats(
    hyps: &[String],
    refs: &[Vec<String>],
) -> Result<Vec<ChrfStats>, EvalError> {
    check_lengths(hyps, refs)?;
    let out = hyps
        .iter()
        .enumerate()
        .map(|(i, hyp)| {
            let hyp_ngrams = char_ngrams(hyp);
            let mut best: Option<(f64, ChrfStats)> = None;
            for stream in refs {
                let s = stats_against(&hyp_ngrams, &char_ngrams(&stream[i]));
                let f = f_score(&s.hyp, &s.reference, &s.matched);
                if best.as_ref().is_none_or(|(bf, _)| f > *bf) {
                    best = Some((f, s));
                }
            }
            // Cannot fail: `check_lengths` refuses an empty reference list.
            best.expect("at least one reference").1
        })
        .collect();
    Ok(out)
}

/// Corpus chrF of the sentences `idx` (repeats allowed) from their statistics.
pub fn chrf_of(all: &[ChrfStats], idx: &[usize]) -> f64 {
    let (mut hyp, mut reference, mut matched) =
        ([0i64; CHAR_ORDER], [0i64; CHAR_ORDER], [0i64; CHAR_ORDER]);
    for &i in idx {
        for n in 0..CHAR_ORDER {
            hyp[n] += all[i].hyp[n];
            reference[n] += all[i].reference[n];
            matched[n] += all[i].matched[n];
        }
    }
    f_score(&hyp, &reference, &matched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sacrebleu_rs::Chrf;

    fn corpus(hyps: &[String], refs: &[Vec<String>]) -> (f64, f64) {
        let stats = chrf_sentence_stats(hyps, refs).unwrap();
        let all: Vec<usize> = (0..hyps.len()).collect();
        (
            chrf_of(&stats, &all),
            Chrf::default().corpus_score(hyps, refs).score,
        )
    }

    #[test]
    fn summed_statistics_give_sacrebleu_corpus_chrf_on_edge_cases() {
        let hyps: Vec<String> = ["a dog runs .", "", "Ü ist ßtraße", "x", "the  cat", "z"]
            .map(String::from)
            .into();
        let refs = vec![
            [
                "a dog is running .",
                "a man",
                "Ü ist Straße",
                "",
                "the cat",
                "z",
            ]
            .map(String::from)
            .into(),
        ];
        let (ours, theirs) = corpus(&hyps, &refs);
        assert_eq!(ours, theirs);
        // One sentence at a time, against the crate's sentence score.
        let stats = chrf_sentence_stats(&hyps, &refs).unwrap();
        for i in 0..hyps.len() {
            let theirs = Chrf::default()
                .sentence_score(&hyps[i], &[refs[0][i].clone()])
                .score;
            assert_eq!(chrf_of(&stats, &[i]), theirs, "sentence {i}");
        }
    }

    #[test]
    fn the_best_of_several_references_is_chosen_as_sacrebleu_does() {
        let hyps: Vec<String> = ["a dog runs", "two men"].map(String::from).into();
        let refs: Vec<Vec<String>> = vec![
            ["a cat sits", "two men talk"].map(String::from).into(),
            ["a dog runs fast", "women"].map(String::from).into(),
        ];
        let (ours, theirs) = corpus(&hyps, &refs);
        assert_eq!(ours, theirs);
    }

    #[test]
    fn a_resample_with_repeats_scores_as_the_repeated_corpus() {
        let hyps: Vec<String> = ["a b c d", "e f g"].map(String::from).into();
        let refs = vec![["a b x d", "e f g h"].map(String::from).into()];
        let stats = chrf_sentence_stats(&hyps, &refs).unwrap();
        let repeated_hyps: Vec<String> = [&hyps[0], &hyps[0], &hyps[1]].map(|s| s.clone()).into();
        let repeated_refs = vec![vec![
            refs[0][0].clone(),
            refs[0][0].clone(),
            refs[0][1].clone(),
        ]];
        assert_eq!(
            chrf_of(&stats, &[0, 0, 1]),
            Chrf::default()
                .corpus_score(&repeated_hyps, &repeated_refs)
                .score
        );
    }

    proptest! {
        #[test]
        fn summed_statistics_equal_corpus_chrf(
            pairs in proptest::collection::vec(("[a-cä ]{0,12}", "[a-cä ]{0,12}"), 1..8)
        ) {
            let hyps: Vec<String> = pairs.iter().map(|p| p.0.clone()).collect();
            let refs = vec![pairs.iter().map(|p| p.1.clone()).collect::<Vec<_>>()];
            let (ours, theirs) = corpus(&hyps, &refs);
            prop_assert_eq!(ours, theirs);
        }
    }
}
