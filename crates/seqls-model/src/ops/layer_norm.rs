//! Layer normalisation (Ba et al. 2016) as one operation with its backward pass written by hand, for
//! the CPU backend (burn-flex) with and without autodiff.
//!
//! Per row `x` of `d` values: `μ = Σx / d`, `σ² = Σ(x − μ)² / d`, `r = 1 / √(σ² + ε)`,
//! `x̂ = (x − μ)·r`, `y = γ ⊙ x̂ + β`. Backward, with `g = ∂L/∂y` and `h = g ⊙ γ`:
//! `∂L/∂β = Σ_rows g`, `∂L/∂γ = Σ_rows g ⊙ x̂`, `∂L/∂x = r·(h − mean(h) − x̂·mean(h ⊙ x̂))`.
//!
//! burn's `LayerNorm` under autodiff is a composition of nine tensor operations (mean, subtraction,
//! square, mean, addition, square root, division, scaling, shift), and its backward pass chains theirs:
//! some twenty passes over `[rows, d]`, each allocating its output. Here the forward pass is one pass
//! per row and the backward pass two; `∂L/∂γ` and `∂L/∂β` are summed over the rows in order, so
//! results do not depend on the number of threads. On other backends the model keeps burn's
//! `LayerNorm` ([`norm`]).

use crate::ops::host_ops::{contiguous, lane_sum, tensor, values};
use crate::tensors::on_cpu;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::nn::LayerNorm;
use burn::tensor::Tensor;

/// `ε` of every layer norm of the model (burn's `LayerNormConfig` default).
pub const EPSILON: f64 = 1e-5;

/// The fused layer norm as a backend operation (see the module documentation).
#[backend_extension(Flex, Autodiff)]
pub trait LayerNormOps: Backend {
    /// `γ ⊙ x̂ + β` over the last dimension of `x`.
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// The backward pass of [`LayerNormOps::fused_layer_norm`] on a backend without autodiff.
pub trait LayerNormBackward: Backend {
    /// `[∂L/∂x, ∂L/∂γ, ∂L/∂β]` of `x`, `γ` and the output's gradient `grad`.
    fn fused_layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3];
}

/// `(mean, 1 / √(σ² + ε))` of one row.
fn row_statistics(x: &[f32]) -> (f32, f32) {
    let d = x.len() as f32;
    let mean = lane_sum(x, x, |a, _| a) / d;
    let var = lane_sum(x, x, |a, _| (a - mean) * (a - mean)) / d;
    (mean, 1.0 / (var + EPSILON as f32).sqrt())
}

impl LayerNormOps for Flex {
    fn fused_layer_norm(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor) -> FlexTensor {
        let shape = x.layout().shape().clone();
        let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
        let (gamma, beta) = (values(&gamma), values(&beta));
        let mut out = vec![0f32; values(&x).len()];
        for (row, y) in values(&x)
            .chunks_exact(gamma.len())
            .zip(out.chunks_exact_mut(gamma.len()))
        {
            let (mean, inverse) = row_statistics(row);
            for (((y, &x), &g), &b) in y.iter_mut().zip(row).zip(gamma).zip(beta) {
                *y = (x - mean) * inverse * g + b;
            }
        }
        tensor(out, shape)
    }
}

impl LayerNormBackward for Flex {
    fn fused_layer_norm_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        grad: FlexTensor,
    ) -> [FlexTensor; 3] {
        let shape = x.layout().shape().clone();
        let gamma_shape = gamma.layout().shape().clone();
        let (x, gamma, grad) = (contiguous(x), contiguous(gamma), contiguous(grad));
        let (gamma, d) = (values(&gamma), gamma.layout().num_elements());
        let mut dx = vec![0f32; values(&x).len()];
        let (mut dgamma, mut dbeta) = (vec![0f32; d], vec![0f32; d]);
        let (mut xhat, mut h) = (vec![0f32; d], vec![0f32; d]);
        for ((row, g), dx) in values(&x)
            .chunks_exact(d)
            .zip(values(&grad).chunks_exact(d))
            .zip(dx.chunks_exact_mut(d))
        {
            let (mean, inverse) = row_statistics(row);
            for i in 0..d {
                xhat[i] = (row[i] - mean) * inverse;
                h[i] = g[i] * gamma[i];
                dgamma[i] += g[i] * xhat[i];
                dbeta[i] += g[i];
            }
            let mean_h = lane_sum(&h, &h, |a, _| a) / d as f32;
            let mean_h_xhat = lane_sum(&h, &xhat, |a, b| a * b) / d as f32;
            for i in 0..d {
                dx[i] = inverse * (h[i] - mean_h - xhat[i] * mean_h_xhat);
            }
        }
        [
            tensor(dx, shape),
            tensor(dgamma, gamma_shape.clone()),
            tensor(dbeta, gamma_shape),
        ]
    }
}

impl<B: Backend + LayerNormOps + LayerNormBackward, C: CheckpointStrategy> LayerNormOps
    for Autodiff<B, C>
{
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct FusedLayerNorm;

        impl<B: Backend + LayerNormBackward> Backward<B, 3> for FusedLayerNorm {
            /// The checkpointed input and scale.
            type State = (NodeId, NodeId);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_gamma, node_beta] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x_state, gamma_state) = ops.state;
                let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x_state);
                let gamma =
                    checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(gamma_state);
                let [dx, dgamma, dbeta] = B::fused_layer_norm_backward(x, gamma, grad);
                for (node, grad) in [(node_x, dx), (node_gamma, dgamma), (node_beta, dbeta)] {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, grad);
                    }
                }
            }
        }

        match FusedLayerNorm
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&gamma));
                prep.finish(
                    state,
                    B::fused_layer_norm(
                        x.into_primitive(),
                        gamma.into_primitive(),
                        beta.into_primitive(),
                    ),
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_layer_norm(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
            )),
        }
    }
}

/// `norm(x)` over the last dimension of `x`: the fused operation on the CPU (with a shift `β`, as
/// every norm of the model has), burn's `LayerNorm` elsewhere.
pub fn norm<const D: usize>(norm: &LayerNorm, x: Tensor<D>) -> Tensor<D> {
    match &norm.beta {
        Some(beta) if on_cpu(&x.device()) => {
            let out = <Dispatch as LayerNormOps>::fused_layer_norm(
                x.into_dispatch(),
                norm.gamma.val().into_dispatch(),
                beta.val().into_dispatch(),
            );
            Tensor::from_dispatch(out)
        }
        _ => norm.forward(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LayerNormConfig;
    use burn::tensor::Device;
    use burn::tensor::Distribution;

    fn vec(t: Tensor<3>) -> Vec<f32> {
        crate::tensors::f32_vec(t)
    }

    fn worst(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    }

    /// Output and the gradients of input, γ and β equal those of burn's `LayerNorm` (its composed
    /// operations differentiated by autodiff), on a transposed (non-contiguous) input with a
    /// non-trivial γ, β and output weighting; `d` = 20 covers the lanes' tail.
    #[test]
    fn matches_burns_layer_norm_and_its_gradients() {
        let device = Device::flex().autodiff();
        device.seed(7);
        let d = 20;
        let mut norm = LayerNormConfig::new(d).init(&device);
        norm.gamma = norm
            .gamma
            .map(|g| g.random_like(Distribution::Normal(1.0, 0.5)).require_grad());
        norm.beta = norm
            .beta
            .map(|b| b.map(|b| b.random_like(Distribution::Normal(0.0, 0.5)).require_grad()));
        let input = Tensor::<3>::random([d, 6, 3], Distribution::Normal(0.5, 2.0), &device);
        let weights = Tensor::<3>::random([3, 6, d], Distribution::Default, &device);
        let mut results = vec![];
        for fused in [false, true] {
            let x = input.clone().require_grad();
            let x_t = x.clone().swap_dims(0, 2);
            let y = if fused {
                super::norm(&norm, x_t)
            } else {
                norm.forward(x_t)
            };
            let grads = (y.clone() * weights.clone()).sum().backward();
            let beta = norm.beta.as_ref().unwrap();
            results.push((
                vec(y),
                vec(x.grad(&grads).unwrap()),
                crate::tensors::f32_vec(norm.gamma.val().grad(&grads).unwrap()),
                crate::tensors::f32_vec(beta.val().grad(&grads).unwrap()),
            ));
        }
        let (want, got) = (&results[0], &results[1]);
        assert!(worst(&got.0, &want.0) < 1e-5, "output");
        assert!(worst(&got.1, &want.1) < 1e-5, "input gradient");
        assert!(worst(&got.2, &want.2) < 1e-5, "gamma gradient");
        assert!(worst(&got.3, &want.3) < 1e-5, "beta gradient");
        assert!(want.1.iter().any(|g| g.abs() > 1e-2));
    }
}
