//! The work on one trained run, each writing its results into the run directory: an evaluation on a
//! split, the search analysis, the time-to-BLEU curve, a teacher's translations for sequence-level
//! distillation, and the penultimate-layer picture. A sweep runs these as its jobs.

pub mod curve;
pub mod distill_data;
pub mod evaluate;
pub mod penultimate;
pub mod search_analysis;
