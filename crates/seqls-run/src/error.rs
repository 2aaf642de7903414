//! Why a run directory or a config could not be used.

use std::fmt::Display;

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
    /// A refusal of this crate, described in words with the file or setting it concerns.
    #[error("{0}")]
    Message(String),
}

impl From<String> for RunError {
    fn from(message: String) -> Self {
        RunError::Message(message)
    }
}

impl From<&str> for RunError {
    fn from(message: &str) -> Self {
        RunError::Message(message.to_string())
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
