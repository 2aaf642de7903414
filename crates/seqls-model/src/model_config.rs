//! `[model]`: the sizes of the transformer and their checks. The model they build is
//! [`crate::transformer`] ([`ModelConfig::init`]).

use crate::error::ModelConfigError;
use serde::{Deserialize, Serialize};

/// `[model]`: sizes of the transformer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    pub d_model: usize,
    pub heads: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    /// Inner size of the feed-forward blocks.
    pub d_ff: usize,
    /// Dropout probability on attention weights, residual branches and embeddings.
    pub dropout: f64,
    /// Longest sequence (in tokens, specials included) the model accepts.
    pub max_len: usize,
    /// Pre-norm (default, trains without warm-up tricks) or post-norm (the original paper).
    pub pre_norm: bool,
    /// Output projection = target embedding matrix (transposed).
    pub tie_output: bool,
    /// One embedding matrix for source and target (joint vocabulary).
    pub share_embeddings: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            d_model: 256,
            heads: 4,
            encoder_layers: 3,
            decoder_layers: 3,
            d_ff: 1024,
            dropout: 0.1,
            max_len: 256,
            pre_norm: true,
            tie_output: true,
            share_embeddings: true,
        }
    }
}

impl ModelConfig {
    /// Checks the sizes; the error names the bad key.
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        if self.d_model == 0 || self.heads == 0 || !self.d_model.is_multiple_of(self.heads) {
            return Err(ModelConfigError::Heads {
                d_model: self.d_model,
                heads: self.heads,
            });
        }
        if !self.d_model.is_multiple_of(2) {
            return Err(ModelConfigError::OddWidth(self.d_model));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ModelConfigError::Dropout(self.dropout));
        }
        if self.d_ff == 0 || self.max_len < 2 {
            return Err(ModelConfigError::Empty);
        }
        for (key, value, limit) in [
            ("model.d_model", self.d_model, 1 << 16),
            ("model.d_ff", self.d_ff, 1 << 18),
            ("model.heads", self.heads, 1 << 10),
            ("model.encoder_layers", self.encoder_layers, 256),
            ("model.decoder_layers", self.decoder_layers, 256),
            ("model.max_len", self.max_len, 1 << 16),
        ] {
            if value > limit {
                return Err(ModelConfigError::TooLarge { key, limit, value });
            }
        }
        Ok(())
    }
}
