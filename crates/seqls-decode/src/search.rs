//! Batched beam search over any [`Scorer`].
//!
//! **Step.** For every unfinished sentence, each of its active hypotheses `h` (at most `K` = beam size)
//! is extended by every allowed token `v`: `score(h·v) = score(h) + log p(v | h)`. The best `2K`
//! candidates of the sentence are ranked; a candidate ending in `</s>` becomes a finished hypothesis if
//! its rank is below `K` (fairseq and Hugging Face do the same), and the first `K` other candidates form
//! the next beam. Rows of all sentences are scored in one [`Scorer`] call per step.
//!
//! **Length penalty.** A finished hypothesis of `n` tokens (`</s>` included) is ranked by
//! `score / lp(n)` ([`LengthPenalty`], in [`crate::ranking`]).
//!
//! **Stopping rule (exact).** A sentence is done when it has `K` finished hypotheses and no active
//! hypothesis can still beat the worst of them: since log-probabilities are ≤ 0 a hypothesis's score
//! never rises, so its best reachable normalised score is `max(score/lp(n+1), score/lp(L))` over the
//! lengths still allowed (`lp` is monotone), and the sentence stops when that bound is below the worst
//! finished normalised score for every active hypothesis. With `K = 1` the search is greedy: the first
//! finished hypothesis ends the sentence. With `early_stop` (`--early-stop`) a sentence ends as soon as it
//! has `K` finished hypotheses, as fairseq and CTranslate2 do by default. A sentence also ends when its hypotheses reach the maximum
//! length `L = a · source_len + b` (tokens before `</s>`), where only `</s>` is allowed.
//!
//! **Constraints.** `<pad>` and `<s>` are never produced; `</s>` is forbidden before `min_len` tokens;
//! `--no-repeat-ngram N` forbids a token that would repeat an `N`-gram of the hypothesis (a hypothesis
//! left with no allowed token ends with `</s>`);
//! `--unk-penalty P` subtracts `P` from the log-probability of `<unk>` when ranking. The reported
//! `score` of a hypothesis is always the sum of its `token_log_probs` (model log-probabilities at the
//! chosen temperature, penalties excluded).

use crate::error::SearchConfigError;
pub use crate::ranking::LengthPenalty;
use crate::scorer::Scorer;
use serde::{Deserialize, Serialize};

/// Ids the search must know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialTokens {
    pub pad: u32,
    pub bos: u32,
    pub eos: u32,
    pub unk: u32,
}

/// Options of the search (`[decode]` in the config; flags of `seqls decode`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// Beam size `K`; 1 is greedy search.
    pub beam_size: usize,
    pub length_penalty: LengthPenalty,
    /// Fewest tokens before `</s>`.
    pub min_len: usize,
    /// Maximum tokens before `</s>` = `max_len_a · source_tokens + max_len_b` (source `</s>` not counted).
    pub max_len_a: f64,
    pub max_len_b: usize,
    /// Hypotheses returned per sentence (≤ beam size).
    pub nbest: usize,
    /// Forbid repeating any n-gram of this size (0 = off).
    pub no_repeat_ngram: usize,
    /// Logits are divided by this before the softmax.
    pub temperature: f32,
    /// Subtracted from the log-probability of `<unk>` when ranking (nats).
    pub unk_penalty: f64,
    /// End a sentence as soon as it has `K` finished hypotheses (fairseq's and CTranslate2's
    /// default, Hugging Face's `early_stopping=True`) instead of by the exact stopping rule: faster
    /// at large beams, and a longer hypothesis that would have won is not waited for. Written only
    /// when set, so that configs and reports from before it existed read and rebuild unchanged.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub early_stop: bool,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            beam_size: 4,
            length_penalty: LengthPenalty::Power(1.0),
            min_len: 0,
            max_len_a: 1.5,
            max_len_b: 10,
            nbest: 1,
            no_repeat_ngram: 0,
            temperature: 1.0,
            unk_penalty: 0.0,
            early_stop: false,
        }
    }
}

impl SearchConfig {
    /// Checks the options; the error names the offending one.
    pub fn validate(&self) -> Result<(), SearchConfigError> {
        if self.beam_size == 0 {
            return Err(SearchConfigError::BeamSize);
        }
        if self.nbest == 0 || self.nbest > self.beam_size {
            return Err(SearchConfigError::Nbest {
                nbest: self.nbest,
                beam_size: self.beam_size,
            });
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(SearchConfigError::Temperature(self.temperature));
        }
        if !(self.max_len_a >= 0.0 && self.max_len_a.is_finite()) {
            return Err(SearchConfigError::MaxLenA(self.max_len_a));
        }
        if self.unk_penalty.is_nan() {
            return Err(SearchConfigError::UnkPenalty);
        }
        match self.length_penalty {
            LengthPenalty::Power(a) | LengthPenalty::Gnmt(a) if !a.is_finite() => {
                return Err(SearchConfigError::LengthPenalty(a));
            }
            _ => {}
        }
        Ok(())
    }

    /// [`validate`](Self::validate), and the lengths against a model that can produce at most
    /// `max_output_len` tokens before `</s>` (its positional limit).
    pub fn validate_for(&self, max_output_len: usize) -> Result<(), SearchConfigError> {
        self.validate()?;
        for (option, value) in [("min-len", self.min_len), ("max-len-b", self.max_len_b)] {
            if value > max_output_len {
                return Err(SearchConfigError::BeyondModel {
                    option,
                    value,
                    limit: max_output_len,
                });
            }
        }
        Ok(())
    }

    /// Maximum number of tokens before `</s>` for a source of `source_len` tokens (saturating: a
    /// huge `max_len_a` gives `usize::MAX`, which the search caps at the model's limit).
    pub fn max_len(&self, source_len: usize) -> usize {
        // A float-to-int cast saturates (and maps NaN to 0).
        let scaled = (self.max_len_a * source_len as f64).floor() as usize;
        scaled.saturating_add(self.max_len_b).max(self.min_len)
    }
}

/// One finished translation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hypothesis {
    /// Produced tokens, `</s>` included as the last one.
    pub tokens: Vec<u32>,
    /// Log-probability of each produced token (nats), `</s>` included.
    pub token_log_probs: Vec<f32>,
    /// `Σ token_log_probs`.
    pub score: f64,
    /// `score / lp(tokens.len())`; hypotheses are ranked by this.
    pub normalized_score: f64,
}

/// How far below a sentence's current 2k-th best score (nats) a token is still gathered: covers the
/// f32 rounding of comparing `lp` with an f64 bound, so that pruning never drops a candidate the
/// exact f64 ranking would keep.
const FLOOR_MARGIN: f32 = 1e-3;

/// A partial hypothesis on the beam.
#[derive(Debug, Clone)]
struct Active {
    tokens: Vec<u32>,
    token_log_probs: Vec<f32>,
    /// Sum of model log-probabilities.
    score: f64,
    /// Score used for ranking (with the `<unk>` penalty).
    rank_score: f64,
}

/// The search state of one sentence.
struct SentenceSearch {
    max_len: usize,
    active: Vec<Active>,
    /// Finished hypotheses with their unnormalised rank score (the `<unk>` penalty included).
    finished: Vec<(f64, Hypothesis)>,
    done: bool,
}

/// One candidate extension of an active hypothesis.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    /// The parent's running score plus the token's log-probability, less any `<unk>` penalty: what
    /// the beam is ranked by.
    rank_score: f64,
    /// The parent's row within the sentence.
    row: usize,
    token: u32,
    /// `log p(token | parent)`, nats.
    log_prob: f32,
}

fn banned_by_ngram(tokens: &[u32], n: usize) -> Vec<u32> {
    if n == 0 || tokens.len() + 1 < n {
        return vec![];
    }
    let prefix = &tokens[tokens.len() + 1 - n..];
    tokens
        .windows(n)
        .filter(|w| &w[..n - 1] == prefix)
        .map(|w| w[n - 1])
        .collect()
}

/// The order of the beam: rank score, highest first; ties by row, then token (so the search does
/// not depend on how candidates were gathered).
fn by_rank(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.rank_score
        .total_cmp(&a.rank_score)
        .then(a.row.cmp(&b.row))
        .then(a.token.cmp(&b.token))
}

impl SentenceSearch {
    /// Appends candidates of row `row` (log-probabilities `log_probs`) to `out`, keeping only the best
    /// `keep` per row, and none whose `lp − penalty` is below `floor` (a bound under which the
    /// candidate cannot reach the sentence's best; `−∞` for none).
    #[allow(clippy::too_many_arguments)]
    fn row_candidates(
        &self,
        row: usize,
        log_probs: &[f32],
        config: &SearchConfig,
        special: SpecialTokens,
        keep: usize,
        floor: f32,
        out: &mut Vec<Candidate>,
    ) {
        let hyp = &self.active[row];
        let len = hyp.tokens.len();
        if len >= self.max_len {
            let lp = log_probs[special.eos as usize];
            out.push(Candidate {
                rank_score: hyp.rank_score + lp as f64,
                row,
                token: special.eos,
                log_prob: lp,
            });
            return;
        }
        let banned = banned_by_ngram(&hyp.tokens, config.no_repeat_ngram);
        // Within a row the order is that of `lp − penalty`: keep the best `keep` with a buffer of
        // `2·keep` that is cut back to `keep` whenever it fills, skipping anything below the cut.
        let mut best: Vec<(f32, u32, f32)> = Vec::with_capacity(2 * keep);
        let mut cut = floor;
        let by_value_desc = |a: &(f32, u32, f32), b: &(f32, u32, f32)| b.0.total_cmp(&a.0);
        // A block of tokens whose log-probabilities are all below the cut is skipped in one
        // vectorised test (`<unk>`'s value exceeds its log-probability only with a negative penalty).
        const BLOCK: usize = 16;
        let unk = special.unk as usize;
        let unk_raised = config.unk_penalty < 0.0;
        for (b, block) in log_probs.chunks(BLOCK).enumerate() {
            let first = b * BLOCK;
            // `!(lp < cut)`, not `lp >= cut`: a NaN reaches the per-token test, as it did before.
            #[allow(clippy::neg_cmp_op_on_partial_ord)]
            let reaches = block.iter().fold(false, |r, &lp| r | !(lp < cut));
            let raised_unk = unk_raised && (first..first + block.len()).contains(&unk);
            if !(reaches || raised_unk) {
                continue;
            }
            for (i, &lp) in block.iter().enumerate() {
                let v = (first + i) as u32;
                let value = if v == special.unk {
                    lp - config.unk_penalty as f32
                } else {
                    lp
                };
                if value < cut
                    || v == special.pad
                    || v == special.bos
                    || (v == special.eos && len < config.min_len)
                    || lp == f32::NEG_INFINITY
                    || banned.contains(&v)
                {
                    continue;
                }
                best.push((value, v, lp));
                if best.len() == 2 * keep {
                    best.select_nth_unstable_by(keep - 1, by_value_desc);
                    best.truncate(keep);
                    cut = best[keep - 1].0;
                }
            }
        }
        if best.is_empty() && floor > f32::NEG_INFINITY {
            // Nothing reached the floor, or everything is forbidden: only the full scan can tell.
            return self.row_candidates(
                row,
                log_probs,
                config,
                special,
                keep,
                f32::NEG_INFINITY,
                out,
            );
        }
        if best.is_empty() {
            // Every token is forbidden (n-gram bans with a tiny vocabulary): end the hypothesis.
            let lp = log_probs[special.eos as usize];
            out.push(Candidate {
                rank_score: hyp.rank_score + lp as f64,
                row,
                token: special.eos,
                log_prob: lp,
            });
            return;
        }
        if best.len() > keep {
            best.select_nth_unstable_by(keep - 1, by_value_desc);
            best.truncate(keep);
        }
        out.extend(best.into_iter().map(|(_, v, lp)| {
            let penalty = if v == special.unk {
                config.unk_penalty
            } else {
                0.0
            };
            Candidate {
                rank_score: hyp.rank_score + lp as f64 - penalty,
                row,
                token: v,
                log_prob: lp,
            }
        }));
    }

    /// Applies one step's ranked candidates; returns the parent row (within the sentence) of each new
    /// active hypothesis.
    fn advance(
        &mut self,
        mut candidates: Vec<Candidate>,
        config: &SearchConfig,
        rankings: &[LengthPenalty],
        special: SpecialTokens,
    ) -> Vec<usize> {
        let k = config.beam_size;
        candidates.sort_by(by_rank);
        let mut next = Vec::with_capacity(k);
        let mut parents = Vec::with_capacity(k);
        for (rank, c) in candidates.iter().enumerate() {
            let Candidate {
                rank_score,
                row,
                token,
                log_prob: lp,
            } = *c;
            let parent = &self.active[row];
            if token == special.eos {
                if rank < k {
                    let mut tokens = parent.tokens.clone();
                    tokens.push(token);
                    let mut token_log_probs = parent.token_log_probs.clone();
                    token_log_probs.push(lp);
                    let score = parent.score + lp as f64;
                    let n = tokens.len();
                    let hyp = Hypothesis {
                        tokens,
                        token_log_probs,
                        score,
                        normalized_score: config.length_penalty.normalize(score, n),
                    };
                    self.finished.push((rank_score, hyp));
                }
            } else if next.len() < k {
                let mut tokens = parent.tokens.clone();
                tokens.push(token);
                let mut token_log_probs = parent.token_log_probs.clone();
                token_log_probs.push(lp);
                next.push(Active {
                    tokens,
                    token_log_probs,
                    score: parent.score + lp as f64,
                    rank_score,
                });
                parents.push(row);
            }
            if next.len() == k && rank + 1 >= k {
                break;
            }
        }
        self.active = next;
        self.done = rankings
            .iter()
            .all(|&lp| self.is_done(config.beam_size, lp, config.early_stop));
        if self.done {
            self.active.clear();
            parents.clear();
        }
        parents
    }

    /// Whether no active hypothesis can still beat the worst finished one under ranking `lp`.
    fn is_done(&self, k: usize, lp: LengthPenalty, early_stop: bool) -> bool {
        if self.active.is_empty() {
            return true;
        }
        if self.finished.len() < k {
            return false;
        }
        if k == 1 || early_stop {
            return true;
        }
        let worst = self
            .finished
            .iter()
            .map(|(rank_score, h)| lp.normalize(*rank_score, h.tokens.len()))
            .fold(f64::INFINITY, f64::min);
        self.active.iter().all(|h| {
            let n_next = h.tokens.len() + 1;
            let n_last = self.max_len + 1;
            let best = lp
                .normalize(h.rank_score, n_next)
                .max(lp.normalize(h.rank_score, n_last));
            best < worst
        })
    }

    /// The finished hypotheses best first under ranking `lp` (ties: the earlier finished first),
    /// with `normalized_score` under `lp`.
    fn ranked(&self, lp: LengthPenalty) -> Vec<Hypothesis> {
        let mut ranked: Vec<(f64, &Hypothesis)> = self
            .finished
            .iter()
            .map(|(rank_score, h)| (lp.normalize(*rank_score, h.tokens.len()), h))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranked
            .into_iter()
            .map(|(_, h)| Hypothesis {
                normalized_score: lp.normalize(h.score, h.tokens.len()),
                ..h.clone()
            })
            .collect()
    }
}

/// Translates a batch: `source_lens[i]` is the token count of source `i` (without `</s>`), and the
/// scorer starts with one row per source. Returns, per source, up to `nbest` hypotheses best first.
pub fn beam_search<S: Scorer + ?Sized>(
    scorer: &mut S,
    source_lens: &[usize],
    config: &SearchConfig,
    special: SpecialTokens,
) -> Vec<Vec<Hypothesis>> {
    search(
        scorer,
        source_lens,
        config,
        &[config.length_penalty],
        special,
    )
    .into_iter()
    .map(|s| {
        s.ranked(config.length_penalty)
            .into_iter()
            .take(config.nbest)
            .collect()
    })
    .collect()
}

/// One beam search that answers for several rankings of the finished hypotheses at once: per source,
/// the best hypothesis under each of `rankings` (in that order; `config.length_penalty` and
/// `config.nbest` are not used). The beam itself does not depend on the ranking (candidates are
/// ranked by their unnormalised score; the ranking only decides when a sentence stops and which
/// finished hypothesis wins), so the search runs until the stopping rule holds for every ranking;
/// since that rule is exact, each ranking's winner is the one a search with that ranking alone returns.
pub fn beam_search_rankings<S: Scorer + ?Sized>(
    scorer: &mut S,
    source_lens: &[usize],
    config: &SearchConfig,
    rankings: &[LengthPenalty],
    special: SpecialTokens,
) -> Vec<Vec<Hypothesis>> {
    search(scorer, source_lens, config, rankings, special)
        .into_iter()
        .map(|s| {
            rankings
                .iter()
                .filter_map(|&lp| s.ranked(lp).into_iter().next())
                .collect()
        })
        .collect()
}

/// The search of a batch until every sentence is done under every ranking.
fn search<S: Scorer + ?Sized>(
    scorer: &mut S,
    source_lens: &[usize],
    config: &SearchConfig,
    rankings: &[LengthPenalty],
    special: SpecialTokens,
) -> Vec<SentenceSearch> {
    let k = config.beam_size;
    let vocab = scorer.vocab_size();
    let mut sentences: Vec<SentenceSearch> = source_lens
        .iter()
        .map(|&n| SentenceSearch {
            max_len: config.max_len(n).min(scorer.max_output_len()),
            active: vec![Active {
                tokens: vec![],
                token_log_probs: vec![],
                score: 0.0,
                rank_score: 0.0,
            }],
            finished: vec![],
            done: false,
        })
        .collect();
    // `rows[r]` = the sentence of scorer row r; rows of one sentence are contiguous, in beam order.
    let mut rows: Vec<usize> = (0..sentences.len()).collect();
    let mut candidates = Vec::new();
    let mut log_probs = Vec::new();
    let mut last = Vec::new();
    while !rows.is_empty() {
        // The rows of a sentence are its active hypotheses, in order.
        last.clear();
        let mut first = 0;
        while first < rows.len() {
            let active = &sentences[rows[first]].active;
            last.extend(
                active
                    .iter()
                    .map(|a| a.tokens.last().copied().unwrap_or(special.bos)),
            );
            first += active.len();
        }
        scorer.next_log_probs(&last, config.temperature, &mut log_probs);
        // Cannot fail: a Scorer that returns the wrong width is a bug in that scorer, not bad input.
        assert_eq!(
            log_probs.len(),
            rows.len() * vocab,
            "scorer returned the wrong number of scores"
        );
        let mut parents = Vec::with_capacity(rows.len() * k);
        let mut next_rows = Vec::with_capacity(rows.len() * k);
        let mut first = 0;
        while first < rows.len() {
            let s = rows[first];
            let count = rows[first..].iter().take_while(|&&x| x == s).count();
            candidates.clear();
            // Only the best 2k candidates of a sentence can matter (at most one per row is `</s>`,
            // so they hold k others): `cut` is the 2k-th best rank score so far, and a row's tokens
            // below `cut − its score` are not gathered (less a margin for the f32 comparison).
            let mut cut = f64::NEG_INFINITY;
            for row in 0..count {
                let lp = &log_probs[(first + row) * vocab..(first + row + 1) * vocab];
                let floor = (cut - sentences[s].active[row].rank_score) as f32 - FLOOR_MARGIN;
                sentences[s].row_candidates(
                    row,
                    lp,
                    config,
                    special,
                    2 * k,
                    floor,
                    &mut candidates,
                );
                if candidates.len() >= 4 * k {
                    candidates.select_nth_unstable_by(2 * k - 1, by_rank);
                    candidates.truncate(2 * k);
                    cut = candidates[2 * k - 1].rank_score;
                }
            }
            if candidates.len() > 2 * k {
                candidates.select_nth_unstable_by(2 * k - 1, by_rank);
                candidates.truncate(2 * k);
            }
            let local =
                sentences[s].advance(std::mem::take(&mut candidates), config, rankings, special);
            for p in local {
                parents.push(first + p);
                next_rows.push(s);
            }
            first += count;
        }
        if !next_rows.is_empty() {
            scorer.reorder(&parents);
        }
        rows = next_rows;
    }
    sentences
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ngram_ban_finds_continuations_of_the_current_suffix() {
        assert_eq!(banned_by_ngram(&[5, 6, 7, 5], 2), vec![6]);
        assert_eq!(banned_by_ngram(&[5, 6, 5, 6], 3), vec![5]);
        assert!(banned_by_ngram(&[5], 3).is_empty());
    }
}
