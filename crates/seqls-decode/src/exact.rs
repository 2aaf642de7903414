//! Exact search: the translation with the highest unnormalised score `Σ log p(yₜ | y<t, x)` under the
//! model (Stahlberg & Byrne 2019), or, when a budget ends the search first, the best found with that
//! fact recorded.
//!
//! **Bound.** Every log-probability is ≤ 0, so a prefix's score is an upper bound on the score of
//! every completion of it. With `B` the best complete score known, a prefix with score ≤ `B` cannot
//! lead to a better translation and is dropped. `B` starts at the score of a given translation (the
//! beam output, as SGNMT's `DFSDecoder` starts from a lower bound) and rises whenever a better
//! complete translation is found. This pruning is exact only because scores never rise; a length
//! reward or an `<unk>` bonus would break it, so exact search ranks by the model's score alone.
//!
//! **Order.** The search is branch-and-bound in length order: all surviving prefixes of length `t`
//! (over all sentences of a batch) are scored in one [`Scorer`] call, the `</s>` extensions of the
//! whole level are compared with `B` first (so short optima, the empty translation included, raise
//! the bound before any longer prefix is kept), and then every other extension with score > `B`
//! becomes a prefix of length `t + 1`. When no prefix survives, the best translation is proven
//! optimal. The prefixes it scores are those whose score exceeds the bound at their level; when the
//! starting bound is the optimum (the beam output is optimal, as for most sentences), that is
//! exactly the set any exact search must score to prove optimality (every prefix scoring above the
//! optimum), so a best-first order would not score fewer. Length order keeps every call one batch
//! and needs no more from a scorer than beam search does.
//!
//! **Memory.** A level's log-probabilities are taken a block of [`BLOCK_ROWS`] rows at a time
//! ([`Scorer::visit_next_log_probs`]), and of each row only `p(</s>)` and the extensions scoring
//! above the bound the level started with are kept until the level ends: a level of 100,000 prefixes
//! needs neither 100,000 rows of log-probabilities at once (2.4 GB at 6,000 words) nor its scorer to
//! compute them at once.
//!
//! **Budget.** A sentence stops unproven when scoring its next level would take it past
//! `max_expansions` scored prefixes, or when its wall-clock time passes `time_limit`; its best
//! translation is then only a lower bound on the optimum ([`ExactOutcome::Budget`]).
//!
//! **Constraints.** As in beam search: `<pad>` and `<s>` are never produced, `</s>` is forbidden
//! before the minimum length (`max(min_len, ⌈r · source_len⌉)` with `r = min_len_ratio`, Stahlberg &
//! Byrne's control) and forced at the maximum length `a · source_len + b`.

use crate::error::SearchConfigError;
use crate::scorer::Scorer;
use crate::search::{Hypothesis, LengthPenalty, SearchConfig, SpecialTokens};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Rows of log-probabilities a level is taken in at a time: 4,096 rows of 6,000 words are 98 MB.
pub const BLOCK_ROWS: usize = 4096;

/// Options of exact search (`seqls decode --exact`).
#[derive(Debug, Clone, PartialEq)]
pub struct ExactConfig {
    /// Most prefixes scored (decoder steps) per sentence before the search gives up.
    pub max_expansions: u64,
    /// Most wall-clock time per sentence (`None`: no limit). The sentences of a batch share a clock.
    pub time_limit: Option<Duration>,
    /// `</s>` is forbidden before `⌈min_len_ratio · source_len⌉` tokens (0: no constraint).
    pub min_len_ratio: f64,
}

impl Default for ExactConfig {
    fn default() -> Self {
        ExactConfig {
            max_expansions: 100_000,
            time_limit: None,
            min_len_ratio: 0.0,
        }
    }
}

impl ExactConfig {
    /// Checks the options, and that `search` holds nothing that exact search cannot honour.
    pub fn validate(&self, search: &SearchConfig) -> Result<(), SearchConfigError> {
        search.validate()?;
        if self.max_expansions == 0 {
            return Err(SearchConfigError::MaxExpansions);
        }
        if !(self.min_len_ratio >= 0.0 && self.min_len_ratio.is_finite()) {
            return Err(SearchConfigError::MinLenRatio(self.min_len_ratio));
        }
        if search.nbest != 1 {
            return Err(SearchConfigError::ExactNbest(search.nbest));
        }
        if search.no_repeat_ngram != 0 || search.unk_penalty != 0.0 {
            return Err(SearchConfigError::ExactPenalties);
        }
        Ok(())
    }

    /// The fewest tokens before `</s>` for a source of `source_len` tokens.
    pub fn min_len(&self, search: &SearchConfig, source_len: usize) -> usize {
        let ratio = (self.min_len_ratio * source_len as f64).ceil() as usize;
        search.min_len.max(ratio)
    }
}

/// How the search of one sentence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExactOutcome {
    /// Every prefix that could beat the result was scored: it is the global optimum.
    Proven,
    /// The budget ended the search: the result is a lower bound on the optimum.
    Budget,
}

/// The result of exact search for one sentence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExactResult {
    /// The best translation found (`normalized_score` = `score`: unnormalised); `None` only when no
    /// translation exists within the length limits and none was given.
    pub best: Option<Hypothesis>,
    pub outcome: ExactOutcome,
    /// Prefixes scored (decoder steps) for this sentence.
    pub expansions: u64,
    /// Whether the search found a translation scoring above the one it started from.
    pub improved: bool,
}

/// A surviving prefix.
#[derive(Debug, Clone)]
struct Prefix {
    tokens: Vec<u32>,
    token_log_probs: Vec<f32>,
    score: f64,
}

impl Prefix {
    fn extend(&self, token: u32, lp: f32) -> Prefix {
        let mut tokens = self.tokens.clone();
        tokens.push(token);
        let mut token_log_probs = self.token_log_probs.clone();
        token_log_probs.push(lp);
        Prefix {
            tokens,
            token_log_probs,
            score: self.score + lp as f64,
        }
    }

    fn into_hypothesis(self) -> Hypothesis {
        Hypothesis {
            normalized_score: LengthPenalty::Power(0.0).normalize(self.score, self.tokens.len()),
            tokens: self.tokens,
            token_log_probs: self.token_log_probs,
            score: self.score,
        }
    }
}

/// The search state of one sentence.
struct SentenceExact {
    min_len: usize,
    max_len: usize,
    prefixes: Vec<Prefix>,
    best: Option<Hypothesis>,
    improved: bool,
    expansions: u64,
    outcome: Option<ExactOutcome>,
    /// During a level: each row's log-probability of `</s>`, in row order.
    eos: Vec<f32>,
    /// During a level: the other extensions scoring above the bound the level started with, in
    /// row order, then token order.
    extensions: Vec<Extension>,
}

/// An extension of a prefix (row `row` of its sentence's level) by `token`.
#[derive(Debug, Clone, Copy)]
struct Extension {
    row: u32,
    token: u32,
    log_prob: f32,
}

impl SentenceExact {
    /// The bound `B`: prefixes must score above it.
    fn bound(&self) -> f64 {
        self.best.as_ref().map_or(f64::NEG_INFINITY, |h| h.score)
    }

    /// Takes the log-probabilities of row `row` (of `self.prefixes`) during a level, rows in order:
    /// keeps its `</s>` log-probability and every other extension scoring above `floor`, the bound
    /// the level started with (the bound only rises, so nothing that can survive the level is left
    /// out).
    fn observe(&mut self, row: usize, log_probs: &[f32], special: SpecialTokens, floor: f64) {
        debug_assert_eq!(row, self.eos.len(), "rows in order");
        self.eos.push(log_probs[special.eos as usize]);
        let prefix = &self.prefixes[row];
        if prefix.tokens.len() >= self.max_len {
            return;
        }
        for (v, &lp) in log_probs.iter().enumerate() {
            let v = v as u32;
            if v == special.eos || v == special.pad || v == special.bos {
                continue;
            }
            if prefix.score + lp as f64 > floor {
                self.extensions.push(Extension {
                    row: row as u32,
                    token: v,
                    log_prob: lp,
                });
            }
        }
    }

    /// Ends a level whose rows were all [observed](Self::observe) and returns the parent row of
    /// each surviving prefix of the next level. The `</s>` extensions of the whole level come first,
    /// so the bound rises before any longer prefix is kept; then every other extension above the
    /// bound becomes a prefix. More than `room` survivors end the sentence on its budget (they are
    /// not all kept).
    fn finish_level(&mut self, special: SpecialTokens, room: u64) -> Vec<usize> {
        let eos = std::mem::take(&mut self.eos);
        let extensions = std::mem::take(&mut self.extensions);
        for (prefix, &lp) in self.prefixes.iter().zip(&eos) {
            if prefix.tokens.len() < self.min_len {
                continue;
            }
            if prefix.score + lp as f64 > self.bound() {
                self.best = Some(prefix.extend(special.eos, lp).into_hypothesis());
                self.improved = true;
            }
        }
        let bound = self.bound();
        let mut next = Vec::new();
        let mut parents = Vec::new();
        for e in extensions {
            let prefix = &self.prefixes[e.row as usize];
            if prefix.score + e.log_prob as f64 > bound {
                if next.len() as u64 == room {
                    self.prefixes.clear();
                    self.outcome = Some(ExactOutcome::Budget);
                    return vec![];
                }
                next.push(prefix.extend(e.token, e.log_prob));
                parents.push(e.row as usize);
            }
        }
        self.prefixes = next;
        if self.prefixes.is_empty() {
            self.outcome = Some(ExactOutcome::Proven);
        }
        parents
    }
}

/// Exact search for a batch: `source_lens[i]` is the token count of source `i` (without `</s>`);
/// the scorer starts with one row per source. `start[i]` is a translation of source `i` whose score
/// is the starting bound (normally the beam output under the same length limits), or `None`.
/// `search` supplies the length limits and the temperature; its ranking, beam size and n-best are not
/// used. Returns one [`ExactResult`] per source.
pub fn exact_search<S: Scorer + ?Sized>(
    scorer: &mut S,
    source_lens: &[usize],
    search: &SearchConfig,
    exact: &ExactConfig,
    start: Vec<Option<Hypothesis>>,
    special: SpecialTokens,
) -> Vec<ExactResult> {
    assert_eq!(start.len(), source_lens.len(), "one start per source");
    let started = Instant::now();
    let vocab = scorer.vocab_size();
    let mut sentences: Vec<SentenceExact> = source_lens
        .iter()
        .zip(start)
        .map(|(&n, best)| {
            let limit = scorer.max_output_len();
            let min_len = exact.min_len(search, n).min(limit);
            let max_len = search.max_len(n).min(limit).max(min_len);
            SentenceExact {
                min_len,
                max_len,
                prefixes: vec![Prefix {
                    tokens: vec![],
                    token_log_probs: vec![],
                    score: 0.0,
                }],
                best,
                improved: false,
                expansions: 0,
                outcome: None,
                eos: Vec::new(),
                extensions: Vec::new(),
            }
        })
        .collect();
    // `rows[r]` = the sentence of scorer row r; rows of one sentence are contiguous.
    let mut rows: Vec<usize> = (0..sentences.len()).collect();
    let mut block = Vec::new();
    while !rows.is_empty() {
        let last: Vec<u32> = sentences
            .iter()
            .filter(|s| s.outcome.is_none())
            .flat_map(|s| s.prefixes.iter())
            .map(|p| p.tokens.last().copied().unwrap_or(special.bos))
            .collect();
        debug_assert_eq!(last.len(), rows.len());
        // Each row's index within its sentence, and the bound each sentence starts the level with.
        let mut local = Vec::with_capacity(rows.len());
        for (r, &s) in rows.iter().enumerate() {
            local.push(if r > 0 && rows[r - 1] == s {
                local[r - 1] + 1
            } else {
                0
            });
        }
        let floors: Vec<f64> = sentences.iter().map(SentenceExact::bound).collect();
        let mut scored = 0;
        scorer.visit_next_log_probs(
            &last,
            search.temperature,
            BLOCK_ROWS,
            &mut block,
            &mut |first, log_probs| {
                for (i, row) in log_probs.chunks(vocab).enumerate() {
                    let s = rows[first + i];
                    sentences[s].observe(local[first + i], row, special, floors[s]);
                }
                scored += log_probs.len();
            },
        );
        // Cannot fail: a Scorer that returns the wrong width is a bug in that scorer, not bad input.
        assert_eq!(
            scored,
            rows.len() * vocab,
            "scorer returned the wrong number of scores"
        );
        let out_of_time = exact.time_limit.is_some_and(|t| started.elapsed() > t);
        let mut parents = Vec::new();
        let mut next_rows = Vec::new();
        let mut first = 0;
        while first < rows.len() {
            let s = rows[first];
            let count = rows[first..].iter().take_while(|&&x| x == s).count();
            let sentence = &mut sentences[s];
            sentence.expansions += count as u64;
            let room = exact.max_expansions.saturating_sub(sentence.expansions);
            let local = sentence.finish_level(special, room);
            if sentence.outcome.is_none() && out_of_time {
                sentence.outcome = Some(ExactOutcome::Budget);
            }
            if sentence.outcome.is_none() {
                parents.extend(local.into_iter().map(|p| first + p));
                next_rows.extend(std::iter::repeat_n(s, sentence.prefixes.len()));
            }
            first += count;
        }
        if !next_rows.is_empty() {
            scorer.reorder(&parents);
        }
        rows = next_rows;
    }
    sentences
        .into_iter()
        .map(|s| ExactResult {
            best: s.best,
            // Cannot fail: the loop ends only when every sentence has an outcome.
            outcome: s.outcome.expect("every sentence ends with an outcome"),
            expansions: s.expansions,
            improved: s.improved,
        })
        .collect()
}
