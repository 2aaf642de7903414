//! seqls-train: the training loop of `seqls train` (Adam, inverse-square-root schedule, global-norm
//! clipping, token-budget batches, validation, best/last checkpoints, exact resume) and the run
//! directory it writes.

pub mod checkpoint;
pub mod config;
pub mod duration;
pub mod error;
pub mod export;
pub mod lock;
pub mod run;
pub mod schedule;
pub mod trainer;

pub use config::{DistillConfig, ExperimentConfig, SlurmConfig, SweepConfig, TrainConfig};
pub use duration::WallClock;
pub use error::TrainError;
pub use lock::RunLock;
pub use run::RunDir;
pub use trainer::{
    LogLine, Start, TrainOptions, TrainSummary, ValidMetrics, read_log, train, validate,
};
