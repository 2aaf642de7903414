//! Why a run directory or a config could not be used.

use std::fmt::Display;
use std::path::PathBuf;

/// The errors of seqls-run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An error with the file or step it happened at, its cause kept.
    #[error("{context}: {source}")]
    At {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The run directory is locked by another process.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    /// The corpus or tokenizer could not be read.
    #[error(transparent)]
    Data(#[from] seqls_data::DataError),
    #[error(transparent)]
    Model(#[from] seqls_model::ModelConfigError),
    #[error(transparent)]
    Search(#[from] seqls_decode::SearchConfigError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
    /// A config key outside what it allows, or keys that contradict each other.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}: no such run directory", .0.display())]
    NoRunDir(PathBuf),
    #[error("{}: no trained model (run `seqls train` first)", .0.display())]
    NoModel(PathBuf),
    #[error("{origin}: not a model weights file ({problem})")]
    NotWeights { origin: String, problem: String },
    /// The file's tensors do not fit the model: which one and the likely cause, in words.
    #[error("{0}")]
    WeightsMismatch(String),
    #[error("no kept weights to average (train with train.keep_last > 0)")]
    NothingToAverage,
    #[error(
        "{}: has no tensor {tensor} of shape {shape:?}: not the same model as {}",
        .file.display(),
        .first.display()
    )]
    NotSameModel {
        file: PathBuf,
        tensor: String,
        shape: Vec<usize>,
        first: PathBuf,
    },
    #[error("{}: {tensor} is not float32", .file.display())]
    NotFloat32 { file: PathBuf, tensor: String },
    #[error(
        "{}: not a seqls checkpoint ({problem}); it is rewritten atomically, so this file was damaged or replaced after it was written",
        .path.display()
    )]
    BadCheckpoint { path: PathBuf, problem: String },
    #[error("{}:{line}: {source}", .path.display())]
    LogLine {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    /// A parameter `seqls export` cannot write: its type, or a name without a PyTorch counterpart.
    #[error("{name}: {problem}")]
    Export { name: String, problem: String },
}

/// A config that cannot run: a key outside its range, or keys that contradict each other. The
/// message names the key(s) and the value found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("{key} must be {allowed}, got {value}")]
    OutOfRange {
        key: &'static str,
        allowed: &'static str,
        value: String,
    },
    #[error(
        "train.schedule = \"linear-decay\" decays to 0 at train.max_steps, which must exceed train.warmup_steps ({warmup_steps}), got {max_steps}"
    )]
    DecayNeedsSteps {
        warmup_steps: usize,
        max_steps: usize,
    },
    #[error("{key} ({average_last}) needs train.keep_last at least as large (got {keep_last})")]
    AverageMoreThanKept {
        /// `train.average_last` or `distill.average_last`.
        key: &'static str,
        average_last: usize,
        keep_last: usize,
    },
    #[error("sweep.alpha_seeds: α = {0} must be one of sweep.alphas and have at least one seed")]
    AlphaSeeds(f64),
    #[error("model.max_len ({model}) must be at least data.max_len + 2 ({needed})")]
    MaxLen { model: usize, needed: usize },
}

impl ConfigError {
    /// `key must be allowed, got value`.
    pub fn out_of_range(key: &'static str, allowed: &'static str, value: impl Display) -> Self {
        ConfigError::OutOfRange {
            key,
            allowed,
            value: value.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, RunError>;

/// Names where an error happened, keeping it as the source: `result.at(path.display())`.
pub trait At<T> {
    fn at(self, context: impl Display) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> At<T> for std::result::Result<T, E> {
    fn at(self, context: impl Display) -> Result<T> {
        self.map_err(|e| RunError::At {
            context: context.to_string(),
            source: Box::new(e),
        })
    }
}
