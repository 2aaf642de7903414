//! seqls-decode: beam search and exact search that do not know about tensors. A model plugs in through the
//! [`Scorer`] trait, which lets the search be tested exactly against brute force on toy scorers.

pub mod error;
pub mod exact;
pub mod ranking;
pub mod scorer;
pub mod search;

pub use error::SearchConfigError;
pub use exact::{ExactConfig, ExactOutcome, ExactResult, exact_search};
pub use scorer::Scorer;
pub use search::{
    Hypothesis, LengthPenalty, SearchConfig, SpecialTokens, beam_search, beam_search_rankings,
};
