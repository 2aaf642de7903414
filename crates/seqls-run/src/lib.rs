//! seqls-run: the experiment config and the run directory: its layout, the files a training writes
//! there (config, tokenizer, checkpoints, weights, log, metrics), each written atomically and read
//! back typed, loading a trained model from it, averaging and exporting its weights.

pub mod checkpoint;
pub mod config;
pub mod duration;
pub mod error;
pub mod export;
pub mod lock;
pub mod log;
pub mod results;
pub mod run;

pub use config::{
    AlphaSeeds, DistillConfig, ExperimentConfig, PrimaryContrast, Schedule, SearchAnalysisConfig,
    SlurmConfig, SweepConfig, TrainConfig,
};
pub use duration::WallClock;
pub use error::{ConfigError, RunError};
pub use lock::{LockError, RunLock};
pub use log::{LogLine, read_log};
pub use results::{TrainSummary, ValidMetrics};
pub use run::RunDir;
