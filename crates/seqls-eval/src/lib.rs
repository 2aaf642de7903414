//! seqls-eval: sacreBLEU-exact BLEU and chrF (and per-sentence statistics of both, for resampling),
//! token-level calibration (teacher-forced, inference, oracle), and comparisons over training seeds.
//! No tensors.

pub mod bleu;
pub mod calibration;
pub mod chrf;
pub mod erasure;
pub mod error;
pub mod inference;
pub mod seeds;

pub use bleu::{
    BleuOptions, BleuReport, SentenceStats, bleu_from_stats, corpus_bleu, corpus_chrf,
    paired_bootstrap, sentence_bleu, sentence_stats,
};
pub use calibration::{Calibration, calibration};
pub use chrf::{ChrfStats, chrf_of, chrf_sentence_stats};
pub use erasure::{ErasureSums, InformationErasure};
pub use error::EvalError;
pub use inference::{OracleCalibration, aligned_matches, oracle_calibration};
pub use seeds::{
    SeedContrast, SeedTTest, Term, chrf_seed_contrast, holm, min_detectable_effect, seed_contrast,
    sign_flip_p,
};
