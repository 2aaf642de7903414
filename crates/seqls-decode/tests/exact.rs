//! Exact search against brute-force enumeration on toy scorers.

mod common;

use common::{HashScorer, SPECIAL, exhaustive};
use seqls_decode::{
    ExactConfig, ExactOutcome, LengthPenalty, Scorer, SearchConfig, SearchConfigError, beam_search,
    exact_search,
};

/// Unnormalised ranking, up to `max_len_b` tokens before `</s>`.
fn search(max_len_b: usize, temperature: f32) -> SearchConfig {
    SearchConfig {
        beam_size: 2,
        length_penalty: LengthPenalty::Power(0.0),
        max_len_a: 0.0,
        max_len_b,
        temperature,
        ..SearchConfig::default()
    }
}

/// The beam output under `cfg`, as the starting bound.
fn beam_output(
    vocab: usize,
    source: u64,
    len: usize,
    cfg: &SearchConfig,
) -> Option<seqls_decode::Hypothesis> {
    beam_search(&mut HashScorer::new(vocab, &[source]), &[len], cfg, SPECIAL)
        .remove(0)
        .into_iter()
        .next()
}

#[test]
fn exact_search_finds_the_exhaustive_optimum_with_and_without_a_starting_bound() {
    // Temperatures 1 (flat: many prefixes survive) and 0.2 (peaked: short optima are common).
    for temperature in [1.0, 0.2] {
        for source in 0..40u64 {
            let cfg = search(4, temperature);
            let want = exhaustive(6, source, 3, &cfg).remove(0);
            for start in [None, beam_output(6, source, 3, &cfg)] {
                let got = exact_search(
                    &mut HashScorer::new(6, &[source]),
                    &[3],
                    &cfg,
                    &ExactConfig::default(),
                    vec![start.clone()],
                    SPECIAL,
                )
                .remove(0);
                assert_eq!(got.outcome, ExactOutcome::Proven);
                let best = got.best.unwrap();
                assert_eq!(best.tokens, want.tokens, "T={temperature} source {source}");
                assert_eq!(best.score, want.score);
                assert_eq!(best.normalized_score, best.score);
                if let Some(start) = start {
                    assert_eq!(got.improved, best.score > start.score);
                }
            }
        }
    }
}

#[test]
fn no_beam_output_outscores_the_exact_optimum_and_the_bound_saves_work() {
    for source in 0..30u64 {
        let cfg = search(5, 0.5);
        let mut expansions = vec![];
        for beam in [1, 2, 4, 8] {
            let beam_cfg = SearchConfig {
                beam_size: beam,
                ..cfg.clone()
            };
            let start = beam_output(7, source, 2, &beam_cfg);
            let got = exact_search(
                &mut HashScorer::new(7, &[source]),
                &[2],
                &cfg,
                &ExactConfig::default(),
                vec![start.clone()],
                SPECIAL,
            )
            .remove(0);
            assert!(got.best.as_ref().unwrap().score >= start.unwrap().score);
            expansions.push(got.expansions);
        }
        let unbounded = exact_search(
            &mut HashScorer::new(7, &[source]),
            &[2],
            &cfg,
            &ExactConfig::default(),
            vec![None],
            SPECIAL,
        )
        .remove(0);
        assert!(expansions.iter().all(|&e| e <= unbounded.expansions));
    }
}

#[test]
fn the_minimum_length_ratio_is_the_exhaustive_optimum_among_long_enough_translations() {
    for (ratio, src_len) in [(1.0, 2), (0.5, 5), (1.5, 2)] {
        for source in 0..20u64 {
            let cfg = search(4, 0.3);
            let exact = ExactConfig {
                min_len_ratio: ratio,
                ..ExactConfig::default()
            };
            let min_len = exact.min_len(&cfg, src_len);
            assert_eq!(min_len, (ratio * src_len as f64).ceil() as usize);
            let want = exhaustive(
                6,
                source,
                src_len,
                &SearchConfig {
                    min_len,
                    ..cfg.clone()
                },
            )
            .remove(0);
            let got = exact_search(
                &mut HashScorer::new(6, &[source]),
                &[src_len],
                &cfg,
                &exact,
                vec![None],
                SPECIAL,
            )
            .remove(0);
            let best = got.best.unwrap();
            assert_eq!(best.tokens, want.tokens);
            assert!(best.tokens.len() > min_len);
        }
    }
}

#[test]
fn a_sentence_alone_or_in_a_batch_gives_the_same_result() {
    let cfg = SearchConfig {
        max_len_a: 1.0,
        max_len_b: 2,
        ..search(0, 0.5)
    };
    let sources: Vec<u64> = (200..212).collect();
    let lens: Vec<usize> = (0..12).map(|i| 1 + i % 3).collect();
    let starts: Vec<_> = sources
        .iter()
        .zip(&lens)
        .map(|(&s, &n)| beam_output(8, s, n, &cfg))
        .collect();
    let batched = exact_search(
        &mut HashScorer::new(8, &sources),
        &lens,
        &cfg,
        &ExactConfig::default(),
        starts.clone(),
        SPECIAL,
    );
    for i in 0..sources.len() {
        let alone = exact_search(
            &mut HashScorer::new(8, &[sources[i]]),
            &[lens[i]],
            &cfg,
            &ExactConfig::default(),
            vec![starts[i].clone()],
            SPECIAL,
        );
        assert_eq!(alone[0], batched[i], "sentence {i}");
    }
}

/// [`HashScorer`] handing its log-probabilities over in blocks of `rows` rows, whatever the search asks.
struct Blocks {
    scorer: HashScorer,
    rows: usize,
}

impl Scorer for Blocks {
    fn vocab_size(&self) -> usize {
        self.scorer.vocab
    }
    fn next_log_probs(&mut self, last: &[u32], temperature: f32, out: &mut Vec<f32>) {
        self.scorer.next_log_probs(last, temperature, out)
    }
    fn visit_next_log_probs(
        &mut self,
        last: &[u32],
        temperature: f32,
        _block_rows: usize,
        buffer: &mut Vec<f32>,
        visit: &mut dyn FnMut(usize, &[f32]),
    ) {
        let mut all = Vec::new();
        self.scorer.next_log_probs(last, temperature, &mut all);
        let width = self.rows * self.scorer.vocab;
        for (b, block) in all.chunks(width).enumerate() {
            buffer.clear();
            buffer.extend_from_slice(block);
            visit(b * self.rows, buffer);
        }
    }
    fn reorder(&mut self, parents: &[usize]) {
        self.scorer.reorder(parents)
    }
}

/// A level taken a few rows at a time (blocks that cut across sentences) gives what it gives
/// whole: the same optimum, outcome and number of scored prefixes, with and without a budget and a
/// minimum length.
#[test]
fn levels_taken_in_blocks_of_rows_give_the_same_result() {
    let cfg = SearchConfig {
        max_len_a: 1.0,
        max_len_b: 3,
        ..search(0, 0.8)
    };
    let sources: Vec<u64> = (300..310).collect();
    let lens: Vec<usize> = (0..10).map(|i| 1 + i % 4).collect();
    let starts: Vec<_> = sources
        .iter()
        .zip(&lens)
        .map(|(&s, &n)| beam_output(7, s, n, &cfg))
        .collect();
    for (max_expansions, min_len_ratio) in [(u64::MAX, 0.0), (40, 0.0), (u64::MAX, 1.0), (25, 1.0)]
    {
        let exact = ExactConfig {
            max_expansions,
            min_len_ratio,
            ..ExactConfig::default()
        };
        let whole = exact_search(
            &mut HashScorer::new(7, &sources),
            &lens,
            &cfg,
            &exact,
            starts.clone(),
            SPECIAL,
        );
        for rows in [1, 2, 3, 7] {
            let mut blocks = Blocks {
                scorer: HashScorer::new(7, &sources),
                rows,
            };
            let got = exact_search(&mut blocks, &lens, &cfg, &exact, starts.clone(), SPECIAL);
            assert_eq!(
                got, whole,
                "blocks of {rows} rows, budget {max_expansions}, ratio {min_len_ratio}"
            );
        }
    }
}

#[test]
fn a_budget_ends_the_search_unproven_with_the_best_found_so_far() {
    let cfg = search(6, 1.0);
    let mut budget_hits = 0;
    for source in 0..20u64 {
        let start = beam_output(9, source, 3, &cfg);
        let run = |max_expansions| {
            let exact = ExactConfig {
                max_expansions,
                ..ExactConfig::default()
            };
            let mut scorer = HashScorer::new(9, &[source]);
            exact_search(
                &mut scorer,
                &[3],
                &cfg,
                &exact,
                vec![start.clone()],
                SPECIAL,
            )
            .remove(0)
        };
        let full = run(u64::MAX);
        assert_eq!(full.outcome, ExactOutcome::Proven);
        if full.expansions < 2 {
            continue;
        }
        // One prefix fewer than the proof needs.
        let cut = run(full.expansions - 1);
        assert_eq!(cut.outcome, ExactOutcome::Budget, "source {source}");
        assert!(cut.expansions < full.expansions);
        let (best, optimum) = (cut.best.unwrap(), full.best.unwrap());
        assert!(best.score >= start.as_ref().unwrap().score && best.score <= optimum.score);
        budget_hits += 1;
    }
    assert!(
        budget_hits >= 10,
        "only {budget_hits} sentences needed more than one step"
    );
}

#[test]
fn options_exact_search_cannot_honour_are_refused() {
    let cfg = search(4, 1.0);
    let ok = ExactConfig::default();
    assert_eq!(ok.validate(&cfg), Ok(()));
    let bad = |exact: ExactConfig, search: SearchConfig| exact.validate(&search).unwrap_err();
    assert_eq!(
        bad(
            ExactConfig {
                max_expansions: 0,
                ..ok.clone()
            },
            cfg.clone()
        ),
        SearchConfigError::MaxExpansions
    );
    for r in [-0.5, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            bad(
                ExactConfig {
                    min_len_ratio: r,
                    ..ok.clone()
                },
                cfg.clone()
            ),
            SearchConfigError::MinLenRatio(_)
        ));
    }
    let nbest = SearchConfig {
        beam_size: 4,
        nbest: 2,
        ..cfg.clone()
    };
    assert_eq!(bad(ok.clone(), nbest), SearchConfigError::ExactNbest(2));
    let ngram = SearchConfig {
        no_repeat_ngram: 2,
        ..cfg.clone()
    };
    assert_eq!(bad(ok.clone(), ngram), SearchConfigError::ExactPenalties);
}
