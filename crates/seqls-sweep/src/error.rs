//! Why an evaluation, a sweep step or a report failed, with the cause kept.

use std::fmt::Display;

/// The errors of seqls-sweep.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// An error with the file or step it happened at.
    #[error("{context}: {source}")]
    At {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Data(#[from] seqls_data::DataError),
    #[error(transparent)]
    Eval(#[from] seqls_eval::EvalError),
    #[error(transparent)]
    Run(#[from] seqls_run::RunError),
    #[error(transparent)]
    Train(#[from] seqls_train::TrainError),
    #[error(transparent)]
    Plot(#[from] seqls_plot::PlotError),
    #[error(transparent)]
    Search(#[from] seqls_decode::SearchConfigError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Format(#[from] std::fmt::Error),
    /// A refusal of this crate, in words.
    #[error("{0}")]
    Message(String),
}

pub type Result<T> = std::result::Result<T, SweepError>;

/// Names where an error happened: `result.at(path.display())`.
pub trait At<T> {
    fn at(self, context: impl Display) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> At<T> for std::result::Result<T, E> {
    fn at(self, context: impl Display) -> Result<T> {
        self.map_err(|e| SweepError::At {
            context: context.to_string(),
            source: Box::new(e),
        })
    }
}

/// `Err(SweepError::Message(format!(…)))`.
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::error::SweepError::Message(format!($($arg)*)))
    };
}
pub(crate) use fail;
