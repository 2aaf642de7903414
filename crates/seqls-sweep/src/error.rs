//! Why an evaluation, a sweep step or a report failed, with the cause kept. Where it happened is
//! added with [`seqls_run::error::At`], the one `At` of the project.

use std::path::PathBuf;

/// The errors of seqls-sweep.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Data(#[from] seqls_data::DataError),
    #[error(transparent)]
    Eval(#[from] seqls_eval::EvalError),
    #[error(transparent)]
    Compare(#[from] seqls_compare::CompareError),
    #[error(transparent)]
    Probs(#[from] seqls_compare::probs::ProbsError),
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
    #[error("the sweep needs at least one α, one seed and one beam size")]
    EmptyGrid,
    #[error("sweep.test_splits is empty: name at least one split to evaluate on")]
    NoTestSplits,
    #[error("sweep job α = {alpha}, seed {seed}: {source}")]
    JobConfig {
        alpha: f64,
        seed: u64,
        /// Boxed (here and in `StudentConfig`): a `RunError` is over 100 bytes, and every
        /// `Result` of the crate would carry it.
        source: Box<seqls_run::RunError>,
    },
    #[error("sweep beam {beam}: {source}")]
    BeamConfig {
        beam: usize,
        source: seqls_decode::SearchConfigError,
    },
    #[error(
        "sweep.compare_beam = {compare_beam} is not one of the sweep's beams {beams:?} (set sweep.compare_beam or --compare-beam)"
    )]
    CompareBeam {
        compare_beam: usize,
        beams: Vec<usize>,
    },
    #[error("distill.kinds: unknown kind {0:?} (use \"word\" and/or \"seq\")")]
    DistillKind(String),
    #[error("distill: word-level distillation needs at least one temperature and one weight")]
    DistillWordGrid,
    #[error("distill.student_alpha must be in [0, 1), got {0}")]
    StudentAlpha(f64),
    #[error("distillation student {student}: {source}")]
    StudentConfig {
        student: String,
        source: Box<seqls_run::RunError>,
    },
    #[error(
        "{} holds the translations of another teacher or search ({} with {search}): choose another --out",
        .out.display(),
        .teacher.display()
    )]
    OtherTeacher {
        out: PathBuf,
        teacher: PathBuf,
        search: String,
    },
    #[error("{array} task {task}: the sweep has {jobs} of them")]
    NoSuchTask {
        array: &'static str,
        task: usize,
        jobs: usize,
    },
    #[error("sbatch {args} failed: {stderr}")]
    Sbatch { args: String, stderr: String },
    #[error("no unfinished jobs to submit")]
    NothingToSubmit,
    #[error("{}: no kept weights (update-<N>.bpk): train with train.keep_last > 0", .0.display())]
    NoKeptWeights(PathBuf),
    #[error("{}: no validation at update {update} in {}", .weights.display(), .log.display())]
    NoValidationAt {
        weights: PathBuf,
        update: usize,
        log: PathBuf,
    },
    #[error("{}: the log has no wall-clock times (written by an older seqls)", .0.display())]
    NoWallClock(PathBuf),
    #[error("split {0} is empty")]
    EmptySplit(String),
    #[error(transparent)]
    Config(#[from] seqls_run::ConfigError),
    #[error("{}: no finished runs with evaluations yet", .0.display())]
    NoFinishedRuns(PathBuf),
    #[error(
        "{dir}: no sweep here yet (no sweep.toml); `seqls sweep --config F --out {dir}` starts one, and `--plan` lists its jobs",
        dir = .0.display()
    )]
    NotASweep(PathBuf),
    #[error("{}: the findings end marker comes before the begin marker", .0.display())]
    FindingsMarkers(PathBuf),
    #[error(
        "{}: these statistics give {got:.4}, but the evaluation reports {expected:.4} (stale; delete the file to recompute it)",
        .file.display()
    )]
    StaleStatistics {
        file: PathBuf,
        got: f64,
        expected: f64,
    },
}

pub type Result<T> = std::result::Result<T, SweepError>;
