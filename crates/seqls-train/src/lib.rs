//! seqls-train: the training loop of `seqls train` (Adam, learning-rate schedules, global-norm
//! clipping, token-budget batches, validation, word-level distillation, exact resume) writing into a
//! run directory (`seqls-run`).

pub mod adam;
pub mod error;
pub mod schedule;
pub mod trainer;

pub use error::TrainError;
pub use trainer::{Start, Teacher, TrainOptions, changed_settings, train, validate};
