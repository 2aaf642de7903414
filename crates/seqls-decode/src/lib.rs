//! seqls-decode: beam search that does not know about tensors. A model plugs in through the
//! [`Scorer`] trait, which lets the search be tested exactly against brute force on toy scorers.

pub mod error;
pub mod scorer;
pub mod search;

pub use error::SearchConfigError;
pub use scorer::Scorer;
pub use search::{Hypothesis, LengthPenalty, SearchConfig, SpecialTokens, beam_search};
