//! Resumable checkpoints: one file holding the training state (JSON header), the model (burnpack
//! bytes) and the Adam state. Written to a temporary file and renamed, so a kill at any moment leaves
//! the previous checkpoint intact.
//!
//! Layout: `SEQLSCK1` magic, then three length-prefixed (u64 little-endian) sections: state JSON, model
//! bytes, optimiser bytes.

use crate::error::{At, RunError};
use crate::results::ValidMetrics;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where training stands. The batch order of an epoch and every dropout mask are functions of the
/// seed, the epoch and the update number, so this is all the random state there is. Wall-clock
/// times are kept elsewhere (`timing.json`), so that identical runs write identical checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Updates done.
    pub step: usize,
    /// Current epoch (0-based) and the number of its batches already consumed.
    pub epoch: usize,
    pub batch_in_epoch: usize,
    /// Best validation NLL per token so far (nats) and the step it was reached at.
    pub best_valid_nll: Option<f64>,
    pub best_step: Option<usize>,
    /// Target tokens processed so far.
    pub target_tokens: u64,
    /// Lines of `log.jsonl` written when this checkpoint was taken: a resumed run truncates the log
    /// to them, so that replayed updates are logged once. (`None` in checkpoints of older versions.)
    #[serde(default)]
    pub log_lines: Option<usize>,
    /// The update of the last validation and its metrics (`None` before the first validation and in
    /// checkpoints of older versions).
    #[serde(default)]
    pub last_valid: Option<(usize, ValidMetrics)>,
}

const MAGIC: &[u8; 8] = b"SEQLSCK1";

/// Writes a checkpoint atomically.
pub fn save(
    path: &Path,
    state: &TrainState,
    model: &[u8],
    optimizer: &[u8],
) -> std::io::Result<()> {
    let header = serde_json::to_vec(state).map_err(std::io::Error::other)?;
    let mut bytes = Vec::with_capacity(8 + 24 + header.len() + model.len() + optimizer.len());
    bytes.extend_from_slice(MAGIC);
    for section in [&header[..], model, optimizer] {
        bytes.extend_from_slice(&(section.len() as u64).to_le_bytes());
        bytes.extend_from_slice(section);
    }
    seqls_data::write::write_atomic(path, &bytes).map_err(|e| std::io::Error::other(e.to_string()))
}

/// Reads a checkpoint: `(state, model bytes, optimiser bytes)`.
pub fn load(path: &Path) -> Result<(TrainState, Vec<u8>, Vec<u8>), crate::error::RunError> {
    let bytes = std::fs::read(path).at(path.display())?;
    let bad = |problem: &str| RunError::BadCheckpoint {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    };
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(bad("wrong magic"));
    }
    let mut at = 8;
    let mut sections = Vec::new();
    for _ in 0..3 {
        let len_bytes: [u8; 8] = bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("truncated"))?;
        let len = usize::try_from(u64::from_le_bytes(len_bytes)).map_err(|_| bad("truncated"))?;
        at += 8;
        let end = at.checked_add(len).ok_or_else(|| bad("truncated"))?;
        sections.push(bytes.get(at..end).ok_or_else(|| bad("truncated"))?.to_vec());
        at = end;
    }
    let (Some(optimizer), Some(model), Some(header)) =
        (sections.pop(), sections.pop(), sections.pop())
    else {
        return Err(bad("truncated"));
    };
    let state = serde_json::from_slice(&header).map_err(|e| bad(&e.to_string()))?;
    Ok((state, model, optimizer))
}
