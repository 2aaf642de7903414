//! seqls-model: the transformer translator (burn), read top to bottom in [`transformer`], its
//! label-smoothed loss in [`loss`], the CPU operations written by hand in [`ops`] (training's linear
//! layers, layer norms, dropout and attention with hand-written backward passes; the output projection
//! with the loss outside autodiff), and in [`decode`] the bridge that lets the burn-free beam search in
//! `seqls-decode` drive the model (on the CPU through a decoding step written by hand).

pub mod decode;
pub mod error;
pub mod loss;
pub mod model_config;
pub mod ops;
pub mod positions;
pub mod teacher_forced;
pub mod tensors;
pub mod transformer;

pub use decode::scorer::ModelScorer;
pub use decode::translate::{SPECIAL_TOKENS, Translator, translate};
pub use error::ModelConfigError;
pub use loss::{
    Distillation, LossSums, Normalize, Smoothing, SmoothingVariant, distillation_objective,
    loss_sums, training_objective,
};
pub use ops::host_output::{HostObjective, HostOutput};
pub use ops::precision::{Precision, PrecisionScope, ProductEngine, use_precision};
pub use teacher_forced::{TokenScore, for_each_distribution, teacher_forced_scores};
pub use transformer::{DecoderCache, DecoderOutput, ModelConfig, Transformer};
