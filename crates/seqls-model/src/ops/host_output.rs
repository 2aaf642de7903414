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
//!
//! With bf16 products on the AMX tiles, [`seqls_amx::Amx::output_layer`] runs the same three
//! products and the loss 32 rows at a time (the same results bit for bit), so that neither the logits
//! nor `G` is written to memory in f32; `W` is packed for the tiles once per update.

use std::sync::OnceLock;

use crate::loss::{
    Distillation, LossSums, ObjectiveRows, RowValues, Smoothing, objective_and_gradient,
};
use crate::ops::host_ops::{View, product_on};
use crate::ops::precision::amx;
use crate::tensors::{f32_vec, on_cpu};
use crate::transformer::Transformer;
use burn::module::ParamId;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use seqls_amx::{Amx, PackedOutput};

/// The output matrix of a model in host memory, read once per update and shared by its shards.
pub struct HostOutput {
    /// Untied: `W` `[d, V]` row-major; tied: `E` `[V, d]` row-major.
    values: Vec<f32>,
    d: usize,
    vocab: usize,
    tied: bool,
    /// The parameter whose gradient [`add_gradient`](Self::add_gradient) completes.
    param: ParamId,
    /// The matrix packed for the tiles, by the first shard that needs it.
    packed: OnceLock<PackedOutput>,
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
            packed: OnceLock::new(),
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
        let (sums, states_gradient, weight_gradient) = match amx() {
            Some(amx) => self.on_tiles(amx, &states, targets, smoothing, teacher, denominator),
            None => self.by_products(None, &states, targets, smoothing, teacher, denominator),
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

    /// The objective's sums, `∂H` `[N, d]` and the weight gradient by three whole products (on
    /// `tiles` when given, else f32: [`product_on`]).
    fn by_products(
        &self,
        tiles: Option<Amx>,
        states: &[f32],
        targets: &[u32],
        smoothing: Smoothing,
        teacher: Option<Distillation<Tensor<3>>>,
        denominator: f64,
    ) -> (LossSums, Vec<f32>, Vec<f32>) {
        let (n, v, d) = (targets.len(), self.vocab, self.d);
        // SAFETY (all three products): every view addresses a buffer of exactly its shape.
        let logits = unsafe { product_on(tiles, n, v, d, View::rows(states, d), self.matrix()) };
        let (sums, gradient) =
            objective_and_gradient(&logits, targets, v, smoothing, teacher, denominator);
        drop(logits);
        let gradient_rows = View::rows(&gradient, v);
        let states_gradient =
            unsafe { product_on(tiles, n, d, v, gradient_rows, self.matrix_transposed()) };
        let weight_gradient = if self.tied {
            let gradient_transposed = View::transposed(&gradient, v);
            unsafe { product_on(tiles, v, d, n, gradient_transposed, View::rows(states, d)) }
        } else {
            let states_transposed = View::transposed(states, d);
            unsafe { product_on(tiles, d, v, n, states_transposed, gradient_rows) }
        };
        (sums, states_gradient, weight_gradient)
    }

    /// As [`Self::by_products`], on the tiles 32 rows at a time ([`Amx::output_layer`]): the same
    /// results bit for bit.
    fn on_tiles(
        &self,
        amx: Amx,
        states: &[f32],
        targets: &[u32],
        smoothing: Smoothing,
        teacher: Option<Distillation<Tensor<3>>>,
        denominator: f64,
    ) -> (LossSums, Vec<f32>, Vec<f32>) {
        let (n, v, d) = (targets.len(), self.vocab, self.d);
        // SAFETY: `values` holds `d·V` values; `Amx` proves the features.
        let packed = self
            .packed
            .get_or_init(|| unsafe { PackedOutput::pack(&self.values, d, v, self.tied) });
        let teacher = teacher.map(Distillation::into_data);
        let distill = teacher.as_ref().map(Distillation::values);
        let objective = ObjectiveRows::new(targets, v, smoothing, distill, 1.0 / denominator);
        let mut values = vec![RowValues::default(); n];
        let mut states_gradient = vec![0f32; n * d];
        let weight_gradient = amx.output_layer(
            packed,
            states,
            &mut values,
            |first, z, g, out| objective.rows(first, z, g, out),
            &mut states_gradient,
        );
        (objective.sums(&values), states_gradient, weight_gradient)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::SmoothingVariant;
    use burn::module::ParamId;

    /// Deterministic values in about [-2, 2].
    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| {
                let x = (i ^ seed).wrapping_mul(0x9E37_79B9) ^ seed.rotate_left(7);
                (x >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
            })
            .collect()
    }

    /// On the tiles, the output layer taken 32 rows at a time gives what the three products give,
    /// bit for bit: the loss's sums, `∂H` and the weight gradient, tied and untied, with a teacher
    /// and pad rows.
    #[test]
    fn the_tiles_by_blocks_give_the_products_results() {
        let Ok(amx) = Amx::detect() else {
            assert_ne!(
                std::env::var("SEQLS_REQUIRE_AMX").as_deref(),
                Ok("1"),
                "no AMX"
            );
            return eprintln!("skipped: no AMX");
        };
        let (n, d, vocab) = (70, 40, 101);
        let states = values(n * d, 1);
        let targets: Vec<u32> = (0..n as u32).map(|i| (i * 37) % vocab as u32).collect();
        let smoothing = Smoothing {
            alpha: 0.1,
            variant: SmoothingVariant::Uniform,
            pad_id: 0,
        };
        let device = Device::flex();
        for tied in [false, true] {
            for with_teacher in [false, true] {
                let output = HostOutput {
                    values: values(d * vocab, 2),
                    d,
                    vocab,
                    tied,
                    param: ParamId::new(),
                    packed: OnceLock::new(),
                };
                let teacher = || {
                    with_teacher.then(|| Distillation {
                        teacher_logits: Tensor::<3>::from_data(
                            TensorData::new(values(n * vocab, 3), [1, n, vocab]),
                            &device,
                        ),
                        temperature: 2.0,
                        weight: 0.5,
                    })
                };
                let (sums, dh, dw) =
                    output.by_products(Some(amx), &states, &targets, smoothing, teacher(), 9.0);
                let (tiles_sums, tiles_dh, tiles_dw) =
                    output.on_tiles(amx, &states, &targets, smoothing, teacher(), 9.0);
                let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(sums, tiles_sums, "tied {tied} teacher {with_teacher}");
                assert_eq!(
                    bits(&dh),
                    bits(&tiles_dh),
                    "tied {tied} teacher {with_teacher}"
                );
                assert_eq!(
                    bits(&dw),
                    bits(&tiles_dw),
                    "tied {tied} teacher {with_teacher}"
                );
                assert!(sums.tokens < n, "a pad row is left out");
            }
        }
    }
}
