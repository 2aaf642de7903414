//! Errors of the data stage. Each names the file and, where there is one, the 1-based line.

use std::path::PathBuf;

/// Everything that can go wrong while reading, generating or tokenising a corpus.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file is missing or unreadable.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// One line of a file is malformed (`line` is 1-based).
    #[error("{path}:{line}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// The two sides of a parallel corpus have different numbers of lines.
    #[error(
        "line counts differ: {src_path} has {src_lines} lines but {tgt_path} has {tgt_lines} lines"
    )]
    LineCountMismatch {
        src_path: PathBuf,
        src_lines: usize,
        tgt_path: PathBuf,
        tgt_lines: usize,
    },
    /// A downloaded or mirrored file does not have the recorded SHA-256 sum.
    #[error("{path}: SHA-256 is {actual}, expected {expected}")]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// The tokenizer could not be trained, saved or loaded.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A configuration value or request is invalid.
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, DataError>;
