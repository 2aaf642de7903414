//! What a training measures: validation metrics and the summary written to `metrics.json`
//! ([`TrainSummary`]), read back typed. The log of every interval is [`crate::log`].

use crate::error::At;
use serde::Serialize;
use std::path::Path;

/// Validation metrics, per non-pad target token (`</s>` included), in nats.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ValidMetrics {
    pub smoothed_loss: f64,
    pub nll: f64,
    /// `exp(nll)`.
    pub perplexity: f64,
    pub accuracy: f64,
    pub tokens: usize,
}

/// What `train` returns and writes to `metrics.json`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSummary {
    pub steps: usize,
    pub epochs_completed: usize,
    pub best_valid_nll: Option<f64>,
    pub best_step: Option<usize>,
    pub final_valid: Option<ValidMetrics>,
    pub train_seconds: f64,
    /// Wall-clock seconds of the run (data loading, updates, validation, checkpoints), over resumes.
    pub wall_seconds: f64,
    /// Why training ended: `epochs`, `steps` or `time` (`train.max_time` reached).
    pub stopped_by: String,
    pub target_tokens_per_sec: f64,
    pub threads: usize,
    pub train_pairs: usize,
    pub filtered_long: usize,
    pub skipped_empty: usize,
}

impl TrainSummary {
    /// Reads `metrics.json`; a missing or malformed field is an error naming the file.
    pub fn read(path: &Path) -> Result<TrainSummary, crate::error::RunError> {
        let text = std::fs::read_to_string(path).at(path.display())?;
        serde_json::from_str(&text).at(path.display())
    }
}
