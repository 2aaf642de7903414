//! seqls-train: the training loop of `seqls train` (Adam, learning-rate schedules, global-norm
//! clipping, token-budget batches, validation, word-level distillation, exact resume) writing into a
//! run directory (`seqls-run`).

pub mod adam;
pub mod error;
mod grads;
pub mod resume;
mod run_data;
pub mod schedule;
pub mod step;
pub mod teacher;
pub mod trainer;
pub mod validation;

pub use error::TrainError;
pub use resume::{SAFE_TO_CHANGE_ON_RESUME, Start, changed_settings};
pub use step::{StepOutcome, UpdateRule, update};
pub use teacher::Teacher;
pub use trainer::{TrainOptions, train};
pub use validation::validate;
