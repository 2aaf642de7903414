//! Why a training, a run directory or a config could not be used.

/// The errors of seqls-train.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The config or the run directory.
    #[error(transparent)]
    Run(#[from] seqls_run::RunError),
    /// The run directory is locked by another process.
    #[error(transparent)]
    Lock(#[from] seqls_run::LockError),
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
    Eval(#[from] seqls_eval::EvalError),
    /// A refusal of this crate, described in words with the file or setting it concerns.
    #[error("{0}")]
    Message(String),
}

impl From<String> for TrainError {
    fn from(message: String) -> Self {
        TrainError::Message(message)
    }
}

impl From<&str> for TrainError {
    fn from(message: &str) -> Self {
        TrainError::Message(message.to_string())
    }
}

pub type Result<T> = std::result::Result<T, TrainError>;
