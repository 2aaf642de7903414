//! seqls-sweep: evaluating trained runs (`seqls eval`) and the α × beam comparison report
//! (`seqls sweep`, `seqls report`).
//!
//! - [`evaluate`]: decode a split, then BLEU, chrF, length ratio, inference calibration, and the
//!   teacher-forced calibration of the run (before and after temperature scaling; against the oracle
//!   on the synthetic corpus), with reliability diagrams.
//! - [`distill`]: a teacher's translations of its training sources (sequence-level distillation).
//! - [`driver`]: the jobs of a sweep directory (trainings, evaluations), run or printed as a plan.
//! - [`penultimate`]: the penultimate-layer picture of Müller et al. (2019), for translation.
//! - [`report`]: tables, comparisons, figures and the generated Findings assembled from a sweep
//!   directory, with the Search and distillation sections.
//! - [`search_analysis`]: beam search at many sizes and rankings against the model's scores and
//!   against exact search (search errors, empty and short outputs).
//! - [`slurm`]: the sweep as a Slurm job array and a dependent report job; where each job stands.

pub mod curve;
pub mod distill;
pub mod driver;
pub mod error;
pub mod evaluate;
mod execute;
pub mod penultimate;
pub mod report;
pub mod search_analysis;
pub mod slurm;
pub mod students;

pub use driver::{Sweep, TrainJob, run_name};
pub use error::{Result, SweepError};
pub use evaluate::{EvalReport, TeacherForced, TeacherForcedReport, evaluate};
pub use report::write_report;
pub use students::{StudentJob, StudentKind};
