//! Beam search against brute force on toy scorers with small vocabularies.

use seqls_decode::{Hypothesis, LengthPenalty, Scorer, SearchConfig, SpecialTokens, beam_search};

const SPECIAL: SpecialTokens = SpecialTokens {
    pad: 0,
    bos: 1,
    eos: 2,
    unk: 3,
};

/// Log-probabilities that depend on the source id and the whole prefix, through a hash.
#[derive(Clone)]
struct HashScorer {
    vocab: usize,
    /// Per row: (source id, prefix).
    rows: Vec<(u64, Vec<u32>)>,
    calls: usize,
}

impl HashScorer {
    fn new(vocab: usize, sources: &[u64]) -> Self {
        HashScorer {
            vocab,
            rows: sources.iter().map(|&s| (s, vec![])).collect(),
            calls: 0,
        }
    }
}

fn log_probs_for(vocab: usize, source: u64, prefix: &[u32], temperature: f32) -> Vec<f32> {
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
    fn next_log_probs(&mut self, last: &[u32], temperature: f32) -> Vec<f32> {
        assert_eq!(last.len(), self.rows.len());
        self.calls += 1;
        let mut out = Vec::new();
        for (row, &t) in self.rows.iter_mut().zip(last) {
            if t != SPECIAL.bos || !row.1.is_empty() {
                row.1.push(t);
            }
            out.extend(log_probs_for(self.vocab, row.0, &row.1, temperature));
        }
        out
    }
    fn reorder(&mut self, parents: &[usize]) {
        self.rows = parents.iter().map(|&p| self.rows[p].clone()).collect();
    }
}

/// Every complete hypothesis allowed by `config`, scored exactly.
fn exhaustive(
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

fn config(beam: usize, lp: LengthPenalty) -> SearchConfig {
    SearchConfig {
        beam_size: beam,
        length_penalty: lp,
        max_len_a: 0.0,
        max_len_b: 4,
        nbest: 1,
        ..SearchConfig::default()
    }
}

#[test]
fn a_beam_as_wide_as_the_search_space_finds_the_exhaustive_optimum() {
    for lp in [
        LengthPenalty::Power(0.0),
        LengthPenalty::Power(1.0),
        LengthPenalty::Power(0.6),
        LengthPenalty::Gnmt(1.0),
        LengthPenalty::Power(-0.5),
    ] {
        for source in 0..20u64 {
            let cfg = SearchConfig {
                nbest: 5,
                ..config(200, lp)
            };
            let mut scorer = HashScorer::new(6, &[source]);
            let got = &beam_search(&mut scorer, &[3], &cfg, SPECIAL)[0];
            let want = exhaustive(6, source, 3, &cfg);
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.tokens, w.tokens, "{lp:?} source {source}");
                assert!((g.normalized_score - w.normalized_score).abs() < 1e-9);
            }
        }
    }
}

#[test]
fn beam_one_is_greedy() {
    for lp in [LengthPenalty::Power(0.0), LengthPenalty::Power(1.0)] {
        for source in 0..30u64 {
            let cfg = SearchConfig {
                max_len_b: 8,
                ..config(1, lp)
            };
            let got = beam_search(&mut HashScorer::new(9, &[source]), &[5], &cfg, SPECIAL)
                .remove(0)
                .remove(0);
            let mut prefix = vec![];
            loop {
                let lp = log_probs_for(9, source, &prefix, 1.0);
                let best = if prefix.len() == 8 {
                    2
                } else {
                    (2..9u32)
                        .max_by(|&a, &b| lp[a as usize].total_cmp(&lp[b as usize]))
                        .unwrap()
                };
                prefix.push(best);
                if best == SPECIAL.eos {
                    break;
                }
            }
            assert_eq!(got.tokens, prefix, "source {source}");
        }
    }
}

#[test]
fn nbest_is_sorted_distinct_and_scores_are_sums_of_token_log_probs() {
    let cfg = SearchConfig {
        beam_size: 6,
        nbest: 6,
        max_len_b: 7,
        ..SearchConfig::default()
    };
    let sources: Vec<u64> = (0..12).collect();
    let out = beam_search(
        &mut HashScorer::new(12, &sources),
        &vec![4; 12],
        &cfg,
        SPECIAL,
    );
    for nbest in out {
        assert_eq!(nbest.len(), 6);
        for w in nbest.windows(2) {
            assert!(w[0].normalized_score >= w[1].normalized_score);
            assert_ne!(w[0].tokens, w[1].tokens);
        }
        let mut seen: Vec<&Vec<u32>> = nbest.iter().map(|h| &h.tokens).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 6);
        for h in &nbest {
            let sum: f64 = h.token_log_probs.iter().map(|&x| x as f64).sum();
            assert!((sum - h.score).abs() < 1e-9);
            assert_eq!(h.tokens.len(), h.token_log_probs.len());
            assert_eq!(*h.tokens.last().unwrap(), SPECIAL.eos);
            assert!(
                h.tokens
                    .iter()
                    .all(|&t| t != SPECIAL.pad && t != SPECIAL.bos)
            );
        }
    }
}

#[test]
fn a_sentence_alone_or_in_a_batch_gives_the_same_output() {
    let cfg = SearchConfig {
        beam_size: 4,
        nbest: 4,
        max_len_a: 1.0,
        max_len_b: 3,
        ..SearchConfig::default()
    };
    let sources: Vec<u64> = (100..116).collect();
    let lens: Vec<usize> = (0..16).map(|i| 1 + i % 6).collect();
    let batched = beam_search(&mut HashScorer::new(10, &sources), &lens, &cfg, SPECIAL);
    for (i, &s) in sources.iter().enumerate() {
        let alone = beam_search(&mut HashScorer::new(10, &[s]), &[lens[i]], &cfg, SPECIAL);
        assert_eq!(alone[0], batched[i], "sentence {i}");
    }
}

#[test]
fn length_limits_are_respected() {
    for (a, b, min) in [(0.0, 2, 0), (1.0, 1, 2), (2.0, 0, 3), (0.5, 5, 5)] {
        let cfg = SearchConfig {
            beam_size: 3,
            nbest: 3,
            max_len_a: a,
            max_len_b: b,
            min_len: min,
            ..SearchConfig::default()
        };
        for source in 0..10u64 {
            let src_len = 1 + source as usize % 4;
            let max = cfg.max_len(src_len);
            for h in beam_search(
                &mut HashScorer::new(7, &[source]),
                &[src_len],
                &cfg,
                SPECIAL,
            )
            .remove(0)
            {
                let n = h.tokens.len() - 1;
                assert!(n <= max && n >= min, "length {n} outside [{min}, {max}]");
            }
        }
    }
}

#[test]
fn no_repeat_ngram_and_unk_penalty() {
    let cfg = SearchConfig {
        beam_size: 4,
        no_repeat_ngram: 2,
        max_len_b: 12,
        min_len: 8,
        unk_penalty: 100.0,
        ..SearchConfig::default()
    };
    for source in 0..10u64 {
        let h = beam_search(&mut HashScorer::new(20, &[source]), &[3], &cfg, SPECIAL)
            .remove(0)
            .remove(0);
        let body = &h.tokens[..h.tokens.len() - 1];
        assert!(!body.contains(&SPECIAL.unk));
        let mut bigrams: Vec<&[u32]> = body.windows(2).collect();
        let n = bigrams.len();
        bigrams.sort();
        bigrams.dedup();
        assert_eq!(bigrams.len(), n, "repeated bigram in {body:?}");
    }
}

#[test]
fn finished_sentences_leave_the_batch() {
    // One short sentence and one long: later calls score fewer rows than a full beam of both.
    let cfg = SearchConfig {
        beam_size: 2,
        max_len_a: 0.0,
        max_len_b: 1,
        min_len: 0,
        ..SearchConfig::default()
    };
    let mut scorer = HashScorer::new(5, &[1, 2]);
    let out = beam_search(&mut scorer, &[1, 1], &cfg, SPECIAL);
    assert_eq!(out.len(), 2);
    assert!(scorer.rows.len() <= 4);
    assert!(scorer.calls <= 2);
}
