//! seqls-eval: sacreBLEU-exact BLEU and chrF, token-level calibration (teacher-forced, inference,
//! oracle). No tensors.

pub mod bleu;
pub mod calibration;
pub mod inference;

pub use bleu::{BleuOptions, BleuReport, corpus_bleu, corpus_chrf, paired_bootstrap};
pub use calibration::{Calibration, calibration};
pub use inference::{OracleCalibration, aligned_matches, oracle_calibration};
