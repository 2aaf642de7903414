//! seqls-sweep: evaluating trained runs (`seqls eval`) and the α × beam comparison report
//! (`seqls sweep`, `seqls report`).
//!
//! - [`evaluate`]: decode a split, then BLEU, chrF, length ratio, inference calibration, and the
//!   teacher-forced calibration of the run (before and after temperature scaling; against the oracle
//!   on the synthetic corpus), with reliability diagrams.
//! - [`penultimate`]: the penultimate-layer picture of Müller et al. (2019), for translation.
//! - [`report`]: tables and figures assembled from a sweep directory.

pub mod curve;
pub mod evaluate;
pub mod penultimate;
pub mod report;

pub use evaluate::{EvalReport, TeacherForced, TeacherForcedReport, evaluate};
pub use report::{run_name, write_report};
