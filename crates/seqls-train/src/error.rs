//! Why a training, a run directory or a config could not be used.

/// The errors of seqls-train.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The run directory is locked by another process.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    /// The corpus or tokenizer could not be read.
    #[error(transparent)]
    Data(#[from] seqls_data::DataError),
    /// Everything else, described in words with the file or setting it concerns.
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
