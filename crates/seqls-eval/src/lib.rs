//! seqls-eval: sacreBLEU-exact BLEU and chrF, token-level calibration, reliability diagrams. No tensors.

pub mod bleu;
pub mod calibration;

pub use bleu::{BleuOptions, BleuReport, corpus_bleu, corpus_chrf, paired_bootstrap};
pub use calibration::{Calibration, calibration};
