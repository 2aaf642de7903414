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
    #[error("language pair must look like de-en, got {0:?}")]
    LanguagePair(String),
    #[error("multi30k has no language {lang:?}; it has {}", .known.join(", "))]
    UnknownLanguage {
        lang: String,
        known: &'static [&'static str],
    },
    #[error("source and target are both {0}")]
    SameLanguage(String),
    /// A Multi30k split that is not in the data directory; `available` lists those that are.
    #[error("multi30k {pair} has no split {split:?} in {}{hint}; available: {available}", .dir.display())]
    NoSplit {
        pair: String,
        split: String,
        dir: PathBuf,
        /// Where the name is not one of Multi30k's splits at all, which ones are.
        hint: &'static str,
        available: String,
    },
    #[error("unknown split {split:?}: corpus {corpus} has train, val and test")]
    UnknownSplit { split: String, corpus: String },
    #[error("data.{0} is not set")]
    SplitNotSet(String),
    /// No data directory given, neither by flag or config nor by the environment variable `.0`.
    #[error("corpus multi30k needs --data-dir DIR or {0} (see `seqls corpus fetch multi30k`)")]
    NoDataDir(&'static str),
    #[error("{key} must be between {low} and {high}, got {value}")]
    OutOfRange {
        key: &'static str,
        low: usize,
        high: usize,
        value: usize,
    },
    #[error("data.{key} must be {allowed}")]
    FileList {
        key: &'static str,
        allowed: &'static str,
    },
    #[error("data.max_tokens ({max_tokens}) must exceed data.max_len ({max_len})")]
    MaxTokens { max_tokens: usize, max_len: usize },
    #[error("vocab_size must be at least 16, got {0}")]
    VocabSize(usize),
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
