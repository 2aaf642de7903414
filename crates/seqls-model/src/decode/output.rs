//! What `seqls decode` writes for each source sentence: the detokenised best translation (`text`), or
//! one JSON line with every hypothesis of the n-best list (`jsonl`), typed so that other tools can read
//! it back ([`NbestLine`]).

use seqls_data::{DataError, SubwordTokenizer};
use seqls_decode::{ExactOutcome, ExactResult, Hypothesis};
use serde::{Deserialize, Serialize};

/// One hypothesis of a `jsonl` line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecodedHypothesis {
    /// Detokenised text.
    pub text: String,
    /// The subword tokens (`</s>` last), as `seqls score --hyp-tokens` reads them.
    pub tokens: Vec<String>,
    /// `Σ token_logprobs` (nats).
    pub score: f64,
    /// The score divided by the length penalty: the ranking key.
    pub normalized_score: f64,
    /// Log-probability of each token (nats).
    pub token_logprobs: Vec<f32>,
}

/// One `jsonl` line: the n-best list of one source sentence, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NbestLine {
    pub hypotheses: Vec<DecodedHypothesis>,
    /// With `decode --exact`: how the search of this sentence ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<ExactSummary>,
}

/// How exact search ended for one sentence (`decode --exact --format jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExactSummary {
    /// `proven`: the hypothesis is the global optimum; `budget`: a lower bound on it.
    pub outcome: ExactOutcome,
    /// Prefixes scored (decoder steps).
    pub expansions: u64,
    /// Whether exact search beat the beam output it started from.
    pub improved: bool,
}

impl From<&ExactResult> for ExactSummary {
    fn from(r: &ExactResult) -> Self {
        ExactSummary {
            outcome: r.outcome,
            expansions: r.expansions,
            improved: r.improved,
        }
    }
}

/// The output line (without its newline) of one source sentence: the best hypothesis's text, or with
/// `jsonl` the whole n-best list as JSON. An empty n-best list (an empty source) gives an empty text.
pub fn output_line(
    nbest: &[Hypothesis],
    tokenizer: &SubwordTokenizer,
    jsonl: bool,
) -> Result<String, DataError> {
    line(nbest, None, tokenizer, jsonl)
}

/// The output line of one source sentence decoded by exact search (`None`: an empty source): as
/// [`output_line`] with the one hypothesis, and with `jsonl` the search's [`ExactSummary`].
pub fn exact_output_line(
    result: Option<&ExactResult>,
    tokenizer: &SubwordTokenizer,
    jsonl: bool,
) -> Result<String, DataError> {
    let best: Vec<Hypothesis> = result.and_then(|r| r.best.clone()).into_iter().collect();
    line(&best, result.map(ExactSummary::from), tokenizer, jsonl)
}

fn line(
    nbest: &[Hypothesis],
    exact: Option<ExactSummary>,
    tokenizer: &SubwordTokenizer,
    jsonl: bool,
) -> Result<String, DataError> {
    if !jsonl {
        return match nbest.first() {
            Some(best) => tokenizer.decode(&best.tokens),
            None => Ok(String::new()),
        };
    }
    let hypotheses = nbest
        .iter()
        .map(|h| {
            Ok(DecodedHypothesis {
                text: tokenizer.decode(&h.tokens)?,
                tokens: h
                    .tokens
                    .iter()
                    .map(|&t| tokenizer.id_to_token(t).unwrap_or_default())
                    .collect(),
                score: h.score,
                normalized_score: h.normalized_score,
                token_logprobs: h.token_log_probs.clone(),
            })
        })
        .collect::<Result<Vec<_>, DataError>>()?;
    // Cannot fail: every field is a string or a number.
    Ok(serde_json::to_string(&NbestLine { hypotheses, exact }).expect("an n-best line serialises"))
}
