//! Adam (Kingma & Ba 2015) as one pass over each parameter on the CPU.
//!
//! burn's `Adam` updates a parameter with about fourteen tensor operations (moments, bias corrections,
//! square root, division, scaling), each a pass over the parameter that allocates its output. This
//! optimizer does the same `f32` operations in the same order, element by element, in one loop over
//! the parameter's own buffers:
//!
//! ```text
//! m ← β₁·m + (1 − β₁)·g            v ← β₂·v + (1 − β₂)·g²          (t ← t + 1; first step: m, v from 0)
//! c = √(1 − β₂ᵗ) / (1 − β₁ᵗ)       θ ← θ − lr·(c·m / (√v + ε·√(1 − β₂ᵗ)))
//! ```
//!
//! so the parameters are bit-identical to burn's `Adam` (without weight decay or AMSGrad), and its
//! state is burn's [`AdamState`]: checkpoints are read and written as before.

use burn::optim::{
    AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer,
};
use burn::tensor::{Device, Tensor, TensorData};
use seqls_model::tensors::{f32_data, f32_slice, f32_vec, on_cpu};
use seqls_run::TrainConfig;

/// Adam's hyper-parameters; see the module documentation.
#[derive(Clone, Debug)]
pub struct FusedAdam {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let (shape, device) = (tensor.shape(), tensor.device());
        let (beta_1, beta_2) = (self.beta_1, self.beta_2);
        let (f1, f2) = (1.0 - beta_1, 1.0 - beta_2);
        let mut param = f32_vec(tensor);
        let grad = f32_data(grad);
        let g = f32_slice(&grad);
        let (time, mut m, mut v, first) = match state {
            Some(state) => {
                let momentum = state.momentum;
                let (m, v) = (f32_vec(momentum.moment_1), f32_vec(momentum.moment_2));
                (momentum.time + 1, m, v, false)
            }
            None => (1, vec![0f32; g.len()], vec![0f32; g.len()], true),
        };
        let t = time as i32;
        let correction_2 = (1.0 - beta_2.powi(t)).sqrt();
        let combined = correction_2 / (1.0 - beta_1.powi(t));
        let epsilon = self.epsilon * correction_2;
        let lr = lr as f32;
        // One pass, in place (the values were read without a copy); every element sees the same
        // operations in the same order as in burn's Adam (whose first step starts from `g·(1 − β)`).
        // On one thread: a second one made this memory-bound pass slower.
        for (((p, m), v), &g) in param.iter_mut().zip(&mut m).zip(&mut v).zip(g) {
            if first {
                (*m, *v) = (g * f1, g * g * f2);
            } else {
                (*m, *v) = (*m * beta_1 + g * f1, *v * beta_2 + g * g * f2);
            }
            *p -= *m * combined / (v.sqrt() + epsilon) * lr;
        }
        let tensor =
            |values: Vec<f32>| Tensor::from_data(TensorData::new(values, shape.clone()), &device);
        let state = AdamState::new(AdaptiveMomentumState::new(time, tensor(m), tensor(v)));
        (tensor(param), Some(state))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}

/// The optimizer of `seqls train` for `t` on `device`: [`FusedAdam`] on the CPU, burn's `Adam`
/// elsewhere (on an accelerator the per-parameter host loop would copy every tensor to the CPU).
pub fn optimizer(t: &TrainConfig, device: &Device) -> ModuleOptimizer {
    let (beta_1, beta_2) = t.adam_betas;
    if on_cpu(device) {
        ModuleOptimizer::from(FusedAdam {
            beta_1,
            beta_2,
            epsilon: t.adam_epsilon,
        })
    } else {
        AdamConfig::new()
            .with_beta_1(beta_1)
            .with_beta_2(beta_2)
            .with_epsilon(t.adam_epsilon)
            .init()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;

    fn grads(model: &Linear, x: &Tensor<2>) -> GradientsParams {
        let loss = model.forward(x.clone()).powi_scalar(2).sum();
        GradientsParams::from_grads(loss.backward(), model)
    }

    /// Five steps (the first without state) on a 70 × 500 layer give the same bits as burn's `Adam`,
    /// and so does a step after the state has been saved by one and loaded by the other.
    #[test]
    fn matches_burns_adam_bit_for_bit() {
        let device = Device::flex().autodiff();
        device.seed(5);
        let start = LinearConfig::new(70, 500).init(&device);
        let x = Tensor::<2>::random([3, 70], burn::tensor::Distribution::Default, &device);
        let config = TrainConfig::default();
        let mut fused = optimizer(&config, &device);
        let mut reference = AdamConfig::new()
            .with_beta_1(config.adam_betas.0)
            .with_beta_2(config.adam_betas.1)
            .with_epsilon(config.adam_epsilon)
            .init();
        let (mut a, mut b) = (start.clone(), start);
        for step in 0..5 {
            let lr = 1e-2 * (step + 1) as f64;
            a = fused.step(lr, a.clone(), grads(&a, &x));
            b = reference.step(lr, b.clone(), grads(&b, &x));
            let (wa, wb) = (a.weight.val().into_data(), b.weight.val().into_data());
            assert_eq!(wa, wb, "step {step}");
            assert_eq!(
                a.bias.as_ref().unwrap().val().into_data(),
                b.bias.as_ref().unwrap().val().into_data()
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("optim.bpk");
        fused.save(&path).unwrap();
        let mut loaded = AdamConfig::new()
            .with_beta_1(config.adam_betas.0)
            .with_beta_2(config.adam_betas.1)
            .with_epsilon(config.adam_epsilon)
            .init()
            .load(&path)
            .unwrap();
        let a = fused.step(1e-2, a.clone(), grads(&a, &x));
        let b = loaded.step(1e-2, b.clone(), grads(&b, &x));
        assert_eq!(a.weight.val().into_data(), b.weight.val().into_data());
    }
}
