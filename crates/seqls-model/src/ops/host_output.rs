//! The output projection, the training objective and their backward pass on the CPU, outside burn's
//! autodiff graph: three `gemm` products over host buffers instead of burn's `[N, V]` tensors.
//!
//! With decoder states `H` `[N, d]` (the `N = B·T` target positions), the output matrix `W` `[d, V]`
//! (tied: `W = Eᵀ`, `E` the target embedding `[V, d]`) and logits `Z = H·W`,
//! [`objective_rows`](crate::loss::objective_rows) gives the objective's sums and
//! `G = ∂objective/∂Z` `[N, V]` (already divided by the batch's denominator). Then
//! - `∂objective/∂H = G·Wᵀ` `[N, d]`, handed to autodiff through the scalar surrogate
//!   `Σ H ⊙ (G·Wᵀ)`, whose right factor is a constant: its gradient with respect to `H` is exactly
//!   `G·Wᵀ`, and the rest of the model is differentiated by autodiff from there;
//! - `∂objective/∂W = Hᵀ·G` `[d, V]` (tied: `∂objective/∂E = Gᵀ·H` `[V, d]`), added to the
//!   parameter's gradient by [`HostOutput::add_gradient`] (tied: to the embedding's gradient from the
//!   lookups).
//!
//! The products are those burn's matmul and its backward pass run (the same `gemm` kernels); what
//! goes is burn's handling of four `[N, V]` tensors per step (the logits, the gradient as a tensor,
//! the surrogate `Σ Z ⊙ G` and autodiff's gradient of it), each a fresh zero-filled allocation, a copy
//! and a pass over memory. The tensor path ([`training_objective`](crate::training_objective)) stays
//! for other devices.

use crate::loss::{Distillation, LossSums, Smoothing, objective_and_gradient};
use crate::ops::host_ops::{View, product};
use crate::tensors::{f32_vec, on_cpu};
use crate::transformer::Transformer;
use burn::module::ParamId;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

/// The output matrix of a model in host memory, read once per update and shared by its shards.
pub struct HostOutput {
    /// Untied: `W` `[d, V]` row-major; tied: `E` `[V, d]` row-major.
    values: Vec<f32>,
    d: usize,
    vocab: usize,
    tied: bool,
    /// The parameter whose gradient [`add_gradient`](Self::add_gradient) completes.
    param: ParamId,
}

/// What [`HostOutput::objective`] computed for one shard.
pub struct HostObjective {
    pub sums: LossSums,
    /// `Σ H ⊙ (G·Wᵀ)`: its gradient with respect to the decoder states is theirs of the objective.
    /// Its value is not the objective: read that from `sums`.
    pub surrogate: Tensor<1>,
    /// `∂objective/∂W` (`[d, V]`) or, tied, `∂objective/∂E` (`[V, d]`), on the inner device.
    pub weight_gradient: Tensor<2>,
}

impl HostOutput {
    /// The output matrix of `model` when `device` is the CPU (burn-flex, under autodiff or not);
    /// elsewhere the objective stays in tensor operations on the device.
    pub fn for_device(model: &Transformer, device: &Device) -> Option<Self> {
        on_cpu(device).then(|| Self::new(model))
    }

    /// Copies the output matrix of `model` into host memory.
    pub fn new(model: &Transformer) -> Self {
        let (weight, tied) = match &model.output {
            Some(linear) => (&linear.weight, false),
            None => (&model.target_embedding().weight, true),
        };
        let value = weight.val();
        let [rows, cols] = value.dims();
        let (d, vocab) = if tied { (cols, rows) } else { (rows, cols) };
        HostOutput {
            values: f32_vec(value),
            d,
            vocab,
            tied,
            param: weight.id,
        }
    }

    /// `W` as a `[d, V]` view.
    fn matrix(&self) -> View {
        if self.tied {
            View::transposed(&self.values, self.d)
        } else {
            View::rows(&self.values, self.vocab)
        }
    }

    /// `Wᵀ` as a `[V, d]` view.
    fn matrix_transposed(&self) -> View {
        if self.tied {
            View::rows(&self.values, self.d)
        } else {
            View::transposed(&self.values, self.vocab)
        }
    }

    /// The objective of decoder states `hidden` `[B, T, d]` (autodiff) against `targets` (`B·T`
    /// ids, row-major), with an optional teacher `(logits [B, T, V], temperature, weight)`, divided by
    /// `denominator`: see the module documentation.
    pub fn objective(
        &self,
        hidden: Tensor<3>,
        targets: &[u32],
        smoothing: Smoothing,
        teacher: Option<Distillation<Tensor<3>>>,
        denominator: f64,
    ) -> HostObjective {
        let [b, t, d] = hidden.dims();
        assert_eq!(d, self.d, "decoder states are [B, T, d]");
        let (n, v) = (b * t, self.vocab);
        assert_eq!(targets.len(), n, "one target per position");
        let device = hidden.device();
        let states = f32_vec(hidden.clone());
        // SAFETY (all three products): every view addresses a buffer of exactly its shape.
        let logits = unsafe { product(n, v, d, View::rows(&states, d), self.matrix()) };
        let (sums, gradient) =
            objective_and_gradient(&logits, targets, v, smoothing, teacher, denominator);
        drop(logits);
        let states_gradient =
            unsafe { product(n, d, v, View::rows(&gradient, v), self.matrix_transposed()) };
        let weight_gradient = if self.tied {
            unsafe {
                product(
                    v,
                    d,
                    n,
                    View::transposed(&gradient, v),
                    View::rows(&states, d),
                )
            }
        } else {
            unsafe {
                product(
                    d,
                    v,
                    n,
                    View::transposed(&states, d),
                    View::rows(&gradient, v),
                )
            }
        };
        let shape = if self.tied { [v, d] } else { [d, v] };
        let states_gradient =
            Tensor::<3>::from_data(TensorData::new(states_gradient, [b, t, d]), &device);
        HostObjective {
            sums,
            surrogate: (hidden * states_gradient).sum(),
            weight_gradient: Tensor::from_data(
                TensorData::new(weight_gradient, shape),
                &device.inner(),
            ),
        }
    }

    /// Adds a shard's [`HostObjective::weight_gradient`] to the output matrix's gradient in `grads`
    /// (tied: the embedding's gradient from the lookups, when it has one).
    pub fn add_gradient(&self, grads: &mut GradientsParams, weight_gradient: Tensor<2>) {
        let total = match grads.remove::<2>(self.param) {
            Some(lookups) => lookups + weight_gradient,
            None => weight_gradient,
        };
        grads.register(self.param, total);
    }
}
