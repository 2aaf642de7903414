//! The n-grams one system matches in the references more often than another (compare-mt's
//! `--compare_ngrams`, `compare_type=match`).
//!
//! Per system, each output n-gram (n = 1..=4, whitespace words) that is still available among its
//! reference's n-grams counts as a match and uses one up. For two systems with match counts `m₁`,
//! `m₂` of an n-gram, compare-mt's salience is `(m₁ + 1) / (m₁ + m₂ + 2)` (Laplace smoothing, α = 1):
//! near 1 where the first system matches it far more often, near 0 where the second does.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub const MAX_ORDER: usize = 4;
/// compare-mt's smoothing of the salience.
const SMOOTHING: f64 = 1.0;

/// Matched n-grams of one system over a corpus, with their counts.
pub fn matched_ngrams(references: &[String], outputs: &[String]) -> HashMap<String, u32> {
    let mut matched = HashMap::new();
    for (reference, output) in references.iter().zip(outputs) {
        let mut available: HashMap<String, u32> = HashMap::new();
        for g in ngrams(reference) {
            *available.entry(g).or_insert(0) += 1;
        }
        for g in ngrams(output) {
            if let Some(left) = available.get_mut(&g)
                && *left > 0
            {
                *left -= 1;
                *matched.entry(g).or_insert(0) += 1;
            }
        }
    }
    matched
}

/// Every n-gram of `text`, n = 1..=[`MAX_ORDER`], words joined by one space.
fn ngrams(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut all = Vec::new();
    for n in 1..=MAX_ORDER {
        for w in words.windows(n) {
            all.push(w.join(" "));
        }
    }
    all
}

/// One n-gram of a comparison and how often each system matched it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SalientNgram {
    pub ngram: String,
    pub baseline: u32,
    pub system: u32,
    /// `(system + 1) / (system + baseline + 2)`.
    pub salience: f64,
}

/// The `k` n-grams `system` matches most distinctly more often than `baseline`, and the `k` the
/// baseline matches more often (most salient first; ties by total count, then alphabetically).
pub fn salient_ngrams(
    baseline: &HashMap<String, u32>,
    system: &HashMap<String, u32>,
    k: usize,
) -> (Vec<SalientNgram>, Vec<SalientNgram>) {
    let mut all: Vec<SalientNgram> = baseline
        .keys()
        .chain(system.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|g| {
            let (b, s) = (
                baseline.get(g).copied().unwrap_or(0),
                system.get(g).copied().unwrap_or(0),
            );
            SalientNgram {
                ngram: g.clone(),
                baseline: b,
                system: s,
                salience: (s as f64 + SMOOTHING) / ((s + b) as f64 + 2.0 * SMOOTHING),
            }
        })
        .collect();
    // Most salient first (`sign` 1) or least salient first (`sign` −1); ties by total count, then
    // alphabetically.
    let ranked = |all: &mut Vec<SalientNgram>, sign: f64| {
        all.sort_by(|a, b| {
            (sign * b.salience)
                .total_cmp(&(sign * a.salience))
                .then((b.baseline + b.system).cmp(&(a.baseline + a.system)))
                .then(a.ngram.cmp(&b.ngram))
        });
    };
    ranked(&mut all, 1.0);
    let more = all
        .iter()
        .filter(|n| n.salience > 0.5)
        .take(k)
        .cloned()
        .collect();
    ranked(&mut all, -1.0);
    let fewer = all
        .iter()
        .filter(|n| n.salience < 0.5)
        .take(k)
        .cloned()
        .collect();
    (more, fewer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_are_clipped_by_the_reference() {
        let refs = vec!["a b a".to_string()];
        let outs = vec!["a a a b".to_string()];
        let m = matched_ngrams(&refs, &outs);
        assert_eq!(m["a"], 2);
        assert_eq!(m["b"], 1);
        assert_eq!(m.get("a a"), None);
        assert_eq!(m["a b"], 1);
        assert_eq!(m.get("a a b"), None);
    }

    #[test]
    fn salience_orders_both_ways() {
        let base: HashMap<String, u32> = [("x".to_string(), 5), ("y".to_string(), 1)].into();
        let sys: HashMap<String, u32> = [("y".to_string(), 9), ("z".to_string(), 2)].into();
        let (more, fewer) = salient_ngrams(&base, &sys, 3);
        assert_eq!(more[0].ngram, "y");
        assert!((more[0].salience - 10.0 / 12.0).abs() < 1e-12);
        assert_eq!(more[1].ngram, "z");
        assert_eq!(fewer[0].ngram, "x");
        assert_eq!(fewer.len(), 1);
    }
}
