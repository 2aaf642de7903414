//! Resuming a run: whether `train` continues a checkpoint, which settings may differ from the saved
//! config, and the checkpoint itself.

use crate::error::TrainError;
use seqls_run::ExperimentConfig;
use seqls_run::checkpoint::{self, TrainState};
use seqls_run::log::truncate_log;
use seqls_run::run::RunDir;

/// What `train` does with the checkpoint of the run directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A new run; refused when the directory holds a checkpoint.
    Fresh,
    /// Continue the checkpoint; refused when there is none, or when a setting that changes results
    /// differs from the run's `config.toml` ([`changed_settings`]).
    Resume,
    /// Continue the checkpoint when there is one, else start a new run (sweep jobs).
    ResumeOrStart,
}

/// Settings whose change alters the results of a run: everything but the names below, which only
/// decide how long it trains, how often it logs, validates and checkpoints, where its data lives,
/// and how it is decoded and swept. Those may differ when a run is resumed.
pub const SAFE_TO_CHANGE_ON_RESUME: &[&str] = &[
    "name",
    "data.data_dir",
    "train.max_epochs",
    "train.max_steps",
    "train.log_every",
    "train.valid_every",
    "train.checkpoint_every",
    "train.valid_bleu",
    "train.max_time",
    "train.keep_last",
    "train.average_last",
    "decode",
    "sweep",
    "distill",
];

/// The settings that differ between the run's saved config and `new`, as `key: old → new`, leaving
/// out [`SAFE_TO_CHANGE_ON_RESUME`].
pub fn changed_settings(saved: &ExperimentConfig, new: &ExperimentConfig) -> Vec<String> {
    fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
        match value {
            toml::Value::Table(table) => {
                for (k, v) in table {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, v, out);
                }
            }
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let as_pairs = |c: &ExperimentConfig| {
        let mut out = vec![];
        if let Ok(value) = toml::Value::try_from(c) {
            flatten("", &value, &mut out);
        }
        out
    };
    let safe = |key: &str| {
        SAFE_TO_CHANGE_ON_RESUME
            .iter()
            .any(|s| key == *s || key.starts_with(&format!("{s}.")))
    };
    let (old, new) = (as_pairs(saved), as_pairs(new));
    let mut keys: Vec<&String> = old.iter().chain(&new).map(|(k, _)| k).collect();
    keys.sort();
    keys.dedup();
    let value = |pairs: &[(String, String)], key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map_or("(unset)".to_string(), |(_, v)| v.clone())
    };
    keys.into_iter()
        .filter(|k| !safe(k))
        .filter_map(|k| {
            let (a, b) = (value(&old, k), value(&new, k));
            (a != b).then(|| format!("{k}: {a} → {b}"))
        })
        .collect()
}

/// Whether `train` continues the run's checkpoint, as `start` asks and the directory allows.
pub(crate) fn resuming(run: &RunDir, start: Start) -> Result<bool, crate::error::TrainError> {
    if run.root.exists() && !run.root.is_dir() {
        return Err(TrainError::NotADirectory(run.root.clone()));
    }
    match (start, run.checkpoint().exists()) {
        (Start::Fresh, true) => Err(TrainError::CheckpointExists(run.root.clone())),
        (Start::Resume, false) => Err(TrainError::NoCheckpoint(run.checkpoint())),
        (_, has) => Ok(has),
    }
}

/// The checkpoint to resume, `(state, model bytes, optimiser bytes)`, after checking that no setting
/// that changes results differs from the run's `config.toml`; the log is cut back to the checkpoint.
pub(crate) fn saved_checkpoint(
    config: &ExperimentConfig,
    run: &RunDir,
) -> Result<(TrainState, Vec<u8>, Vec<u8>), crate::error::TrainError> {
    let saved = ExperimentConfig::load(&run.config())?;
    let changed = changed_settings(&saved, config);
    if !changed.is_empty() {
        return Err(TrainError::ChangedSettings {
            config: run.config(),
            changed,
            allowed: SAFE_TO_CHANGE_ON_RESUME,
        });
    }
    let checkpoint = checkpoint::load(&run.checkpoint())?;
    truncate_log(&run.log(), &checkpoint.0)?;
    Ok(checkpoint)
}
