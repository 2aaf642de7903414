//! Why a search configuration was refused.

/// A search option out of range; the message names the option as the command line spells it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SearchConfigError {
    #[error("beam size must be at least 1")]
    BeamSize,
    #[error("nbest ({nbest}) must be between 1 and the beam size ({beam_size})")]
    Nbest { nbest: usize, beam_size: usize },
    #[error("temperature must be positive, got {0}")]
    Temperature(f32),
    #[error("max-len-a must be a finite number ≥ 0, got {0}")]
    MaxLenA(f64),
    #[error("unk-penalty must be a number, got NaN")]
    UnkPenalty,
    #[error("the length penalty must be finite, got {0}")]
    LengthPenalty(f64),
    #[error(
        "{option} {value} exceeds the model's limit of {limit} output tokens (model.max_len − 1)"
    )]
    BeyondModel {
        option: &'static str,
        value: usize,
        limit: usize,
    },
    #[error("max-expansions must be at least 1")]
    MaxExpansions,
    #[error("min-len-ratio must be a finite number ≥ 0, got {0}")]
    MinLenRatio(f64),
    #[error("--exact returns one translation per sentence: nbest must be 1, got {0}")]
    ExactNbest(usize),
    #[error(
        "--exact ranks by the model's score alone: no-repeat-ngram and unk-penalty must be unset"
    )]
    ExactPenalties,
}
