//! Beam search against brute force on toy scorers with small vocabularies.

mod common;

use common::{HashScorer, SPECIAL, exhaustive, log_probs_for};
use seqls_decode::{LengthPenalty, SearchConfig, beam_search};

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
    let out = beam_search(&mut HashScorer::new(12, &sources), &[4; 12], &cfg, SPECIAL);
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

#[test]
fn one_search_for_several_rankings_gives_each_ranking_its_own_search_result() {
    let rankings = [
        LengthPenalty::Power(0.0),
        LengthPenalty::Power(1.0),
        LengthPenalty::Gnmt(0.6),
    ];
    let sources: Vec<u64> = (300..340).collect();
    let lens: Vec<usize> = (0..40).map(|i| 1 + i % 5).collect();
    for beam in [1, 2, 4, 8, 16] {
        let cfg = SearchConfig {
            beam_size: beam,
            max_len_a: 1.5,
            max_len_b: 3,
            ..SearchConfig::default()
        };
        let all = seqls_decode::beam_search_rankings(
            &mut HashScorer::new(11, &sources),
            &lens,
            &cfg,
            &rankings,
            SPECIAL,
        );
        for (r, &lp) in rankings.iter().enumerate() {
            let alone = beam_search(
                &mut HashScorer::new(11, &sources),
                &lens,
                &SearchConfig {
                    length_penalty: lp,
                    ..cfg.clone()
                },
                SPECIAL,
            );
            for (i, (a, b)) in all.iter().zip(&alone).enumerate() {
                assert_eq!(a[r], b[0], "beam {beam} {lp:?} sentence {i}");
            }
        }
    }
}

#[test]
fn early_stop_never_beats_the_exact_rule_and_sometimes_stops_short() {
    let mut shorter = 0;
    for lp in [LengthPenalty::Power(1.0), LengthPenalty::Power(0.0)] {
        for source in 0..200u64 {
            let cfg = SearchConfig {
                max_len_b: 6,
                ..config(3, lp)
            };
            let early = SearchConfig {
                early_stop: true,
                ..cfg.clone()
            };
            let mut scorer = HashScorer::new(5, &[source]);
            let full = &beam_search(&mut scorer, &[3], &cfg, SPECIAL)[0][0];
            let mut scorer = HashScorer::new(5, &[source]);
            let quick = &beam_search(&mut scorer, &[3], &early, SPECIAL)[0][0];
            // The exact rule continues the same beams past the early stop: it can only do better.
            assert!(
                quick.normalized_score <= full.normalized_score + 1e-12,
                "{lp:?} source {source}"
            );
            if quick.normalized_score < full.normalized_score {
                shorter += 1;
            }
        }
    }
    assert!(
        shorter > 0,
        "early stop never changed the output: did it run?"
    );
    // Greedy search stops at its first finished hypothesis either way.
    for source in 0..20u64 {
        let greedy = config(1, LengthPenalty::Power(1.0));
        let early = SearchConfig {
            early_stop: true,
            ..greedy.clone()
        };
        let a = &beam_search(&mut HashScorer::new(5, &[source]), &[3], &greedy, SPECIAL)[0][0];
        let b = &beam_search(&mut HashScorer::new(5, &[source]), &[3], &early, SPECIAL)[0][0];
        assert_eq!(a.tokens, b.tokens);
    }
}
