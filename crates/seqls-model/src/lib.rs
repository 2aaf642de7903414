//! seqls-model: the transformer translator (burn), its label-smoothed loss, and the bridge that lets
//! the burn-free beam search in `seqls-decode` drive it.

pub mod dropout;
pub mod error;
pub mod inference;
pub mod loss;
pub mod output;
pub mod transformer;

pub use error::ModelConfigError;
pub use inference::{
    ModelScorer, SPECIAL_TOKENS, TokenScore, for_each_distribution, teacher_forced_scores,
    translate,
};
pub use loss::{
    Normalize, SmoothingVariant, TokenLoss, distillation_kl, distillation_objective,
    label_smoothed_loss,
};
pub use transformer::{DecoderCache, DecoderOutput, ModelConfig, Transformer};
