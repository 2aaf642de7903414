//! The CPU operations written by hand: training's linear layers, layer norms, dropout and attention
//! as burn backend extensions with hand-written backward passes, the output projection with the loss
//! outside autodiff, the softmax arithmetic, and what they share (products over host buffers).
//! On other devices the model uses burn's composed operations instead.

pub mod attention;
pub mod dropout;
pub(crate) mod host_ops;
pub(crate) mod host_output;
pub mod layer_norm;
pub mod linear;
pub mod log_softmax;
pub mod precision;
