//! `corpus stats`: sentence and token counts, length percentiles, vocabulary sizes, dropped pairs and
//! the padding fraction of token-budget batches.

use crate::batch::padding_fraction;
use crate::corpus::EncodedCorpus;
use crate::read::ParallelText;
use serde::Serialize;
use std::collections::HashSet;

/// Length distribution of one side, in tokens.
#[derive(Debug, Clone, Serialize)]
pub struct LengthSummary {
    pub mean: f64,
    pub p50: usize,
    pub p90: usize,
    pub p99: usize,
    pub max: usize,
}

impl LengthSummary {
    /// Nearest-rank percentiles of `lengths`.
    pub fn new(mut lengths: Vec<usize>) -> Self {
        lengths.sort_unstable();
        let pct = |p: f64| {
            if lengths.is_empty() {
                0
            } else {
                lengths[((p / 100.0 * lengths.len() as f64).ceil() as usize)
                    .clamp(1, lengths.len())
                    - 1]
            }
        };
        let mean = if lengths.is_empty() {
            0.0
        } else {
            lengths.iter().sum::<usize>() as f64 / lengths.len() as f64
        };
        LengthSummary {
            mean,
            p50: pct(50.0),
            p90: pct(90.0),
            p99: pct(99.0),
            max: lengths.last().copied().unwrap_or(0),
        }
    }
}

/// Everything `seqls corpus stats` prints.
#[derive(Debug, Clone, Serialize)]
pub struct CorpusStats {
    pub lines: usize,
    pub pairs: usize,
    pub skipped_empty: usize,
    pub filtered_long: usize,
    /// Whitespace-separated words.
    pub src_words: usize,
    pub tgt_words: usize,
    pub src_word_types: usize,
    pub tgt_word_types: usize,
    /// Subword tokens (no specials) over the kept pairs.
    pub src_subwords: usize,
    pub tgt_subwords: usize,
    pub subword_types_used: usize,
    pub src_length_subwords: LengthSummary,
    pub tgt_length_subwords: LengthSummary,
    pub max_tokens: usize,
    /// Fraction of batch cells that are `<pad>` with this budget.
    pub padding_fraction: f64,
}

/// Computes the statistics of `text` and its tokenised form.
pub fn corpus_stats(
    text: &ParallelText,
    encoded: &EncodedCorpus,
    max_tokens: usize,
) -> CorpusStats {
    let words = |f: fn(&crate::read::Pair) -> &str| {
        let mut types = HashSet::new();
        let mut n = 0;
        for p in &text.pairs {
            for w in f(p).split_whitespace() {
                n += 1;
                types.insert(w);
            }
        }
        (n, types.len())
    };
    let (src_words, src_word_types) = words(|p| &p.src);
    let (tgt_words, tgt_word_types) = words(|p| &p.tgt);
    let src_lens: Vec<usize> = encoded.examples.iter().map(|e| e.src.len() - 1).collect();
    let tgt_lens: Vec<usize> = encoded.examples.iter().map(|e| e.tgt.len()).collect();
    let used: HashSet<u32> = encoded
        .examples
        .iter()
        .flat_map(|e| e.src[..e.src.len() - 1].iter().chain(&e.tgt))
        .copied()
        .collect();
    CorpusStats {
        lines: text.stats.lines,
        pairs: encoded.examples.len(),
        skipped_empty: text.stats.skipped_empty,
        filtered_long: encoded.filtered_long,
        src_words,
        tgt_words,
        src_word_types,
        tgt_word_types,
        src_subwords: src_lens.iter().sum(),
        tgt_subwords: tgt_lens.iter().sum(),
        subword_types_used: used.len(),
        src_length_subwords: LengthSummary::new(src_lens),
        tgt_length_subwords: LengthSummary::new(tgt_lens),
        max_tokens,
        padding_fraction: padding_fraction(&encoded.examples, max_tokens),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let s = LengthSummary::new((1..=100).collect());
        assert_eq!((s.p50, s.p90, s.p99, s.max), (50, 90, 99, 100));
        assert_eq!(LengthSummary::new(vec![]).max, 0);
    }
}
