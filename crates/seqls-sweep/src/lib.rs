//! seqls-sweep: the work on one trained run (`seqls eval`, `seqls search-analysis`, `seqls curve`,
//! `seqls distill-data`) in [`per_run`], and the α × seed × beam study built from it (`seqls sweep`,
//! `seqls report`) in the other modules.
//!
//! - [`per_run`]: evaluate a run on a split (BLEU, chrF, calibration, reliability diagrams), analyse
//!   its search (beams 1–64, rankings, exact search), its time-to-BLEU curve, a teacher's translations
//!   for sequence-level distillation, the penultimate-layer picture.
//! - [`driver`]: the sweep directory and its jobs (trainings, evaluations, search analyses);
//!   [`students`]: the distillation study's students; running them in order or printing them as a plan.
//! - [`slurm`]: the sweep as a Slurm job array and a dependent report job; where each job stands.
//! - [`report`]: tables, comparisons over seeds, figures and the generated Findings assembled from a
//!   sweep directory, with the Search and distillation sections.

pub mod driver;
pub mod error;
mod execute;
pub mod per_run;
pub mod report;
pub mod slurm;
pub mod students;

pub use driver::{Sweep, TrainJob, run_name};
pub use error::{Result, SweepError};
pub use per_run::evaluate::{EvalReport, TeacherForced, TeacherForcedReport, evaluate};
pub use report::write_report;
pub use students::{StudentJob, StudentKind};
