//! Linear layers `y = x·W + b` over the rows of `[B, L, d_in]` activations, on the CPU as one
//! operation with its backward pass written by hand.
//!
//! With `x` `[N, d_in]` (the `N = B·L` rows), `W` `[d_in, d_out]`, `b` `[d_out]` and `g = ∂L/∂y`:
//! `∂L/∂x = g·Wᵀ`, `∂L/∂W = xᵀ·g`, `∂L/∂b = Σ_rows g` (summed in row order). The three products are
//! `gemm`-crate calls (the kernels burn-flex runs, on its parallel path above the same size), written
//! into fresh buffers without zero-filling them first, the bias written into the output before the
//! product adds to it (on AMX tiles, loaded into them as each block's start:
//! [`crate::ops::host_ops::biased_product`]). burn's composition (a matmul, a broadcast addition, and in the backward pass two
//! matmuls of transposed views and a reduction) allocates each output zero-filled and then copies it
//! into an aligned buffer. On other backends [`project`] is burn's matmul plus bias.

use crate::ops::host_ops::{View, biased_product, contiguous, product, tensor, values};
use crate::tensors::on_cpu;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::nn::Linear;
use burn::tensor::{Shape, Tensor};

/// The fused linear layer as a backend operation (see the module documentation).
#[backend_extension(Flex, Autodiff)]
pub trait LinearOps: Backend {
    /// `x·W + b` for `x` `[N, d_in]`, `W` `[d_in, d_out]`, `b` `[d_out]`.
    fn fused_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// The backward pass of [`LinearOps::fused_linear`] on a backend without autodiff.
pub trait LinearBackward: Backend {
    /// `[∂L/∂x, ∂L/∂W, ∂L/∂b]` of `x`, `W` and the output's gradient `grad`.
    fn fused_linear_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3];
}

/// `[rows, cols]` of a 2-D tensor.
fn dims(t: &FlexTensor) -> [usize; 2] {
    let shape = t.layout().shape();
    assert_eq!(shape.num_dims(), 2, "fused linear takes 2-D operands");
    [shape[0], shape[1]]
}

impl LinearOps for Flex {
    fn fused_linear(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
        let ([m, k], [k_w, n]) = (dims(&x), dims(&weight));
        assert_eq!(k, k_w, "x [N, d_in] · W [d_in, d_out]");
        let bias = values(&bias);
        assert_eq!(bias.len(), n, "bias [d_out]");
        // SAFETY: `x` is `[m, k]`, `W` `[k, n]`.
        let out = unsafe {
            biased_product(
                m,
                n,
                k,
                bias,
                View::rows(values(&x), k),
                View::rows(values(&weight), n),
            )
        };
        tensor(out, [m, n])
    }
}

impl LinearBackward for Flex {
    fn fused_linear_backward(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
    ) -> [FlexTensor; 3] {
        let (x, weight, grad) = (contiguous(x), contiguous(weight), contiguous(grad));
        let ([m, k], [_, n]) = (dims(&x), dims(&weight));
        let (x, weight, grad) = (values(&x), values(&weight), values(&grad));
        assert_eq!(grad.len(), m * n, "grad [N, d_out]");
        // SAFETY: `grad` is `[m, n]`, `W` `[k, n]` (read transposed as `[n, k]`), `x` `[m, k]` (read
        // transposed as `[k, m]`).
        let dx = unsafe { product(m, k, n, View::rows(grad, n), View::transposed(weight, n)) };
        let dw = unsafe { product(k, n, m, View::transposed(x, k), View::rows(grad, n)) };
        let mut db = vec![0f32; n];
        for row in grad.chunks_exact(n) {
            for (d, &g) in db.iter_mut().zip(row) {
                *d += g;
            }
        }
        [tensor(dx, [m, k]), tensor(dw, [k, n]), tensor(db, [1, n])]
    }
}

impl<B: Backend + LinearOps + LinearBackward, C: CheckpointStrategy> LinearOps for Autodiff<B, C> {
    fn fused_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct FusedLinear;

        impl<B: Backend + LinearBackward> Backward<B, 3> for FusedLinear {
            /// The checkpointed input and weight, and the bias's shape.
            type State = (NodeId, NodeId, Shape);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_weight, node_bias] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x_state, weight_state, bias_shape) = ops.state;
                let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x_state);
                let weight =
                    checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(weight_state);
                let [dx, dw, db] = B::fused_linear_backward(x, weight, grad);
                let db = B::float_reshape(db, bias_shape);
                for (node, grad) in [(node_x, dx), (node_weight, dw), (node_bias, db)] {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, grad);
                    }
                }
            }
        }

        let bias_shape = burn::backend::TensorMetadata::shape(bias.primitive());
        match FusedLinear
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&weight), bias_shape);
                prep.finish(
                    state,
                    B::fused_linear(
                        x.into_primitive(),
                        weight.into_primitive(),
                        bias.into_primitive(),
                    ),
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_linear(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
            )),
        }
    }
}

/// `linear(x)` for `x` `[B, L, d_in]`, as one 2-D product over the `B·L` rows: on the CPU the fused
/// operation (for a layer with a bias, as every layer that calls this has), elsewhere burn's matmul
/// and addition. (burn's own `Linear` runs some shapes, e.g. 64 sentences of 50 positions into 256
/// columns, as a batched product against the broadcast weight, whose backward pass builds a
/// `[B, d_in, d_out]` weight gradient and sums it.)
pub fn project(x: Tensor<3>, linear: &Linear) -> Tensor<3> {
    let [b, l, d_in] = x.dims();
    let rows = x.reshape([b * l, d_in]);
    let weight = linear.weight.val();
    let y = match &linear.bias {
        Some(bias) if on_cpu(&rows.device()) => {
            Tensor::from_dispatch(<Dispatch as LinearOps>::fused_linear(
                rows.into_dispatch(),
                weight.into_dispatch(),
                bias.val().into_dispatch(),
            ))
        }
        Some(bias) => rows.matmul(weight) + bias.val().unsqueeze::<2>(),
        None => rows.matmul(weight),
    };
    let d_out = y.dims()[1];
    y.reshape([b, l, d_out])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;
    use burn::tensor::Device;
    use burn::tensor::Distribution;

    fn worst(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    }

    /// Output and the gradients of input, weight and bias equal burn's matmul and addition under
    /// autodiff, for a transposed (non-contiguous) input, on the serial and the parallel path.
    #[test]
    fn matches_burns_matmul_and_its_gradients() {
        let device = Device::flex().autodiff();
        device.seed(9);
        for (b, l, d_in, d_out) in [(2, 3, 5, 7), (7, 10, 200, 600)] {
            let mut linear = LinearConfig::new(d_in, d_out).init(&device);
            linear.bias = linear
                .bias
                .map(|p| p.map(|t| t.random_like(Distribution::Default).require_grad()));
            let input = Tensor::<3>::random([l, b, d_in], Distribution::Default, &device);
            let weights = Tensor::<3>::random([b, l, d_out], Distribution::Default, &device);
            let mut results = vec![];
            for fused in [false, true] {
                let x = input.clone().require_grad();
                let x_t = x.clone().swap_dims(0, 1);
                let y = if fused {
                    project(x_t, &linear)
                } else {
                    let bias = linear.bias.as_ref().unwrap().val();
                    (x_t.reshape([b * l, d_in]).matmul(linear.weight.val()) + bias.unsqueeze::<2>())
                        .reshape([b, l, d_out])
                };
                let grads = (y.clone() * weights.clone()).sum().backward();
                let bias = linear.bias.as_ref().unwrap();
                results.push([
                    crate::tensors::f32_vec(y),
                    crate::tensors::f32_vec(x.grad(&grads).unwrap()),
                    crate::tensors::f32_vec(linear.weight.val().grad(&grads).unwrap()),
                    crate::tensors::f32_vec(bias.val().grad(&grads).unwrap()),
                ]);
            }
            for (i, what) in ["output", "input", "weight", "bias"].iter().enumerate() {
                let scale = results[0][i].iter().fold(0f32, |m, v| m.max(v.abs()));
                assert!(scale > 0.0, "{what}");
                let error = worst(&results[1][i], &results[0][i]);
                assert!(
                    error <= 1e-5 * scale.max(1.0),
                    "{what} [{b}, {l}, {d_in}→{d_out}]: {error}"
                );
            }
        }
    }
}
