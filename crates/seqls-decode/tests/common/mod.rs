//! A toy scorer whose log-probabilities depend on the source and the whole prefix, and brute-force
//! enumeration of every translation it allows: the references the searches are tested against.

#![allow(dead_code)] // each test binary uses part of it

use seqls_decode::{Hypothesis, Scorer, SearchConfig, SpecialTokens};

pub const SPECIAL: SpecialTokens = SpecialTokens {
    pad: 0,
    bos: 1,
    eos: 2,
    unk: 3,
};

/// Log-probabilities that depend on the source id and the whole prefix, through a hash.
#[derive(Clone)]
pub struct HashScorer {
    pub vocab: usize,
    /// Per row: (source id, prefix).
    pub rows: Vec<(u64, Vec<u32>)>,
    pub calls: usize,
}

impl HashScorer {
    pub fn new(vocab: usize, sources: &[u64]) -> Self {
        HashScorer {
            vocab,
            rows: sources.iter().map(|&s| (s, vec![])).collect(),
            calls: 0,
        }
    }
}

pub fn log_probs_for(vocab: usize, source: u64, prefix: &[u32], temperature: f32) -> Vec<f32> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ source;
    for &t in prefix {
        h = (h ^ t as u64).wrapping_mul(0x100_0000_01b3);
    }
    let logits: Vec<f64> = (0..vocab)
        .map(|v| {
            let mut x = (h ^ (v as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x ^= x >> 31;
            (x % 10_000) as f64 / 2_000.0 / temperature as f64
        })
        .collect();
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let z = logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln() + max;
    logits.iter().map(|l| (l - z) as f32).collect()
}

impl Scorer for HashScorer {
    fn vocab_size(&self) -> usize {
        self.vocab
    }
    fn next_log_probs(&mut self, last: &[u32], temperature: f32, out: &mut Vec<f32>) {
        assert_eq!(last.len(), self.rows.len());
        self.calls += 1;
        out.clear();
        for (row, &t) in self.rows.iter_mut().zip(last) {
            if t != SPECIAL.bos || !row.1.is_empty() {
                row.1.push(t);
            }
            out.extend(log_probs_for(self.vocab, row.0, &row.1, temperature));
        }
    }
    fn reorder(&mut self, parents: &[usize]) {
        self.rows = parents.iter().map(|&p| self.rows[p].clone()).collect();
    }
}

/// Every complete hypothesis allowed by `config`, scored exactly.
pub fn exhaustive(
    vocab: usize,
    source: u64,
    source_len: usize,
    config: &SearchConfig,
) -> Vec<Hypothesis> {
    let max_len = config.max_len(source_len);
    let mut out = Vec::new();
    let mut stack: Vec<(Vec<u32>, Vec<f32>)> = vec![(vec![], vec![])];
    while let Some((prefix, lps)) = stack.pop() {
        let lp = log_probs_for(vocab, source, &prefix, config.temperature);
        let len = prefix.len();
        if len >= config.min_len {
            let mut tokens = prefix.clone();
            tokens.push(SPECIAL.eos);
            let mut token_log_probs = lps.clone();
            token_log_probs.push(lp[SPECIAL.eos as usize]);
            let score: f64 = token_log_probs.iter().map(|&x| x as f64).sum();
            let normalized_score = config.length_penalty.normalize(score, tokens.len());
            out.push(Hypothesis {
                tokens,
                token_log_probs,
                score,
                normalized_score,
            });
        }
        if len < max_len {
            for v in 3..vocab as u32 {
                let mut p = prefix.clone();
                p.push(v);
                let mut l = lps.clone();
                l.push(lp[v as usize]);
                stack.push((p, l));
            }
        }
    }
    out.sort_by(|a, b| b.normalized_score.total_cmp(&a.normalized_score));
    out
}
