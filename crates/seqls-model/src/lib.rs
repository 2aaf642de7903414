//! seqls-model: the transformer translator (burn), its label-smoothed loss, and the bridge that lets
//! the burn-free beam search in `seqls-decode` drive it (on the CPU through a decoding step written
//! by hand, `host_decoder` and `host_cache`). On the CPU, training's linear layers, layer norms,
//! dropout and attention are single operations with hand-written backward passes (`linear`,
//! `layer_norm`, `dropout`, `attention`: burn backend extensions), and the output projection with the
//! loss runs outside autodiff (`host_output`).

pub mod attention;
pub mod dropout;
pub mod error;
mod host_cache;
mod host_decoder;
mod host_ops;
mod host_output;
pub mod layer_norm;
pub mod linear;
pub mod log_softmax;
pub mod loss;
pub mod model_config;
pub mod output;
pub mod positions;
pub mod scorer;
pub mod teacher_forced;
pub mod tensors;
pub mod transformer;
pub mod translate;

pub use error::ModelConfigError;
pub use host_output::{HostObjective, HostOutput};
pub use loss::{
    Distillation, LossSums, Normalize, Smoothing, SmoothingVariant, distillation_objective,
    loss_sums, training_objective,
};
pub use scorer::ModelScorer;
pub use teacher_forced::{TokenScore, for_each_distribution, teacher_forced_scores};
pub use transformer::{DecoderCache, DecoderOutput, ModelConfig, Transformer};
pub use translate::{SPECIAL_TOKENS, Translator, translate};
