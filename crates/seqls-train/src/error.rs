//! Why a training, a run directory or a config could not be used.

use std::path::PathBuf;

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
    #[error("{}: is a file, not a run directory: choose another --run-dir", .0.display())]
    NotADirectory(PathBuf),
    #[error(
        "{} already holds a checkpoint: pass --resume to continue it, or choose another --run-dir",
        .0.display()
    )]
    CheckpointExists(PathBuf),
    #[error(
        "{}: no checkpoint to resume (use --resume-or-start to start a new run when there is none)",
        .0.display()
    )]
    NoCheckpoint(PathBuf),
    /// Settings that would change the results of the run being resumed, as `key: old → new`.
    #[error(
        "{}: these settings differ from the run being resumed and would change its results:\n  {}\n(only {} may change on resume; train into a new --run-dir instead)",
        .config.display(),
        .changed.join("\n  "),
        .allowed.join(", ")
    )]
    ChangedSettings {
        config: PathBuf,
        changed: Vec<String>,
        /// The settings that may change ([`crate::SAFE_TO_CHANGE_ON_RESUME`]).
        allowed: &'static [&'static str],
    },
    #[error("{}: another process changed the run directory while this one started", .0.display())]
    StartRace(PathBuf),
    #[error("the {0} split has no usable pairs")]
    EmptySplit(&'static str),
    #[error(
        "non-finite loss ({loss}) at update {update}: training stopped; the last good checkpoint is {}",
        .checkpoint.display()
    )]
    NonFiniteLoss {
        loss: f64,
        update: usize,
        checkpoint: PathBuf,
    },
    #[error(
        "train.teacher {}: no trained model there (model-best.bpk, model-average.bpk or checkpoint.bin)",
        .0.display()
    )]
    NoTeacher(PathBuf),
    #[error("train.teacher {}: {source}", .dir.display())]
    TeacherLoad {
        dir: PathBuf,
        /// Boxed: a `RunError` is over 100 bytes, and every `Result` of the crate would carry it.
        source: Box<seqls_run::RunError>,
    },
    #[error(
        "train.teacher {}: its tokenizer has {teacher} ids but the student's data.vocab_size is {student}: a student uses its teacher's tokenizer, so set data.vocab_size = {teacher}",
        .dir.display()
    )]
    TeacherVocab {
        dir: PathBuf,
        teacher: usize,
        student: usize,
    },
}

pub type Result<T> = std::result::Result<T, TrainError>;
