//! The training log `log.jsonl`: one [`LogLine`] per logging interval and per validation, appended as
//! training goes, cut back to a checkpoint on resume, and read back typed.

use crate::checkpoint::TrainState;
use crate::error::{At, RunError};
use crate::results::ValidMetrics;
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// One line of `log.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum LogLine {
    Train {
        step: usize,
        epoch: usize,
        lr: f64,
        loss: f64,
        nll: f64,
        tokens_per_sec: f64,
    },
    Valid {
        step: usize,
        epoch: usize,
        metrics: ValidMetrics,
        greedy_bleu: Option<f64>,
        train_seconds: f64,
        wall_seconds: f64,
    },
}

/// Reads `log.jsonl`; a malformed line is an error naming the file and line.
pub fn read_log(path: &Path) -> Result<Vec<LogLine>, crate::error::RunError> {
    let text = std::fs::read_to_string(path).at(path.display())?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| RunError::LogLine {
                path: path.to_path_buf(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// Appends one line to `log.jsonl` and counts it in `state.log_lines`.
pub fn append_log(
    path: &Path,
    line: &LogLine,
    state: &mut TrainState,
) -> Result<(), crate::error::RunError> {
    let text = serde_json::to_string(line).at(path.display())?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .at(path.display())?;
    writeln!(file, "{text}").at(path.display())?;
    state.log_lines = Some(state.log_lines.unwrap_or(0) + 1);
    Ok(())
}

/// Cuts `log.jsonl` back to what it held when the checkpoint of `state` was taken: its first
/// `state.log_lines` lines (or, for checkpoints without that count, the lines of updates up to
/// `state.step`), so that updates replayed after a kill are logged once.
pub fn truncate_log(path: &Path, state: &TrainState) -> Result<(), crate::error::RunError> {
    #[derive(serde::Deserialize)]
    struct Step {
        step: usize,
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: Vec<&str> = match state.log_lines {
        Some(n) => text.lines().take(n).collect(),
        None => text
            .lines()
            .take_while(|l| serde_json::from_str::<Step>(l).is_ok_and(|s| s.step <= state.step))
            .collect(),
    };
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    if out.len() != text.len() {
        seqls_data::write::write_atomic(path, out.as_bytes())?;
    }
    Ok(())
}
