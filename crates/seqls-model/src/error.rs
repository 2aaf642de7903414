//! Why a model shape was refused.

/// A `[model]` setting out of range; the message names the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelConfigError {
    #[error("model.d_model ({d_model}) must be a positive multiple of model.heads ({heads})")]
    Heads { d_model: usize, heads: usize },
    #[error("model.d_model ({0}) must be even (sinusoidal positions)")]
    OddWidth(usize),
    #[error("model.dropout must be in [0, 1), got {0}")]
    Dropout(f64),
    #[error("model.d_ff must be positive and model.max_len at least 2")]
    Empty,
    /// Far beyond anything trainable here (a typo such as d_model = 5120000), refused before it
    /// allocates.
    #[error("{key} must be at most {limit}, got {value}")]
    TooLarge {
        key: &'static str,
        limit: usize,
        value: usize,
    },
}
