//! Why a metric could not be computed.

/// The errors of seqls-eval: options sacreBLEU would change silently, and inputs that do not fit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("tokenizer {0:?} is not supported (use 13a, intl, char or none)")]
    Tokenizer(String),
    #[error("smoothing {0:?} is not supported (use exp, floor, add-k or none)")]
    Smoothing(String),
    #[error("add-k smoothing needs a whole number k, got {0}")]
    AddK(f64),
    #[error("at least one reference is needed")]
    NoReference,
    #[error("reference {stream} has {lines} lines but the hypotheses have {hypotheses}")]
    LineCount {
        stream: usize,
        lines: usize,
        hypotheses: usize,
    },
    #[error("no sentences to resample")]
    NoSentences,
    #[error("the bootstrap needs at least one resample")]
    NoResamples,
    /// A seed contrast whose systems do not line up (see [`crate::seeds`]).
    #[error("{0}")]
    Contrast(&'static str),
}
