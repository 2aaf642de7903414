//! Resumable checkpoints: one file holding the training state (JSON header), the model (burnpack
//! bytes) and the Adam state. Written to a temporary file and renamed, so a kill at any moment leaves
//! the previous checkpoint intact.
//!
//! Layout: `SEQLSCK1` magic, then three length-prefixed (u64 little-endian) sections: state JSON, model
//! bytes, optimiser bytes.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where training stands. The batch order of an epoch and every dropout mask are functions of the
/// seed, the epoch and the update number, so this is all the random state there is.
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
    /// Wall-clock seconds spent training so far (summed over resumes).
    pub train_seconds: f64,
    /// Target tokens processed so far.
    pub target_tokens: u64,
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
    seqls_data::read::write_atomic(path, &bytes).map_err(|e| std::io::Error::other(e.to_string()))
}

/// Reads a checkpoint: `(state, model bytes, optimiser bytes)`.
pub fn load(path: &Path) -> Result<(TrainState, Vec<u8>, Vec<u8>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = |why: &str| format!("{}: not a seqls checkpoint ({why})", path.display());
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(bad("wrong magic"));
    }
    let mut at = 8;
    let mut sections = Vec::new();
    for _ in 0..3 {
        let len_bytes: [u8; 8] = bytes
            .get(at..at + 8)
            .ok_or_else(|| bad("truncated"))?
            .try_into()
            .expect("8 bytes");
        let len = u64::from_le_bytes(len_bytes) as usize;
        at += 8;
        sections.push(
            bytes
                .get(at..at + len)
                .ok_or_else(|| bad("truncated"))?
                .to_vec(),
        );
        at += len;
    }
    let optimizer = sections.pop().expect("3 sections");
    let model = sections.pop().expect("3 sections");
    let state = serde_json::from_slice(&sections[0]).map_err(|e| bad(&e.to_string()))?;
    Ok((state, model, optimizer))
}
