//! The gradients of one update: the shards' gradients summed in shard order and rescaled so that
//! their global L2 norm `‖g‖₂ = sqrt(Σ_p Σ_i g_{p,i}²)` is at most `clip_norm` (factor
//! `clip_norm / (‖g‖₂ + 1e-6)`, as fairseq's `clip_grad_norm_`). On the CPU this runs on the host
//! buffers in one pass; elsewhere in burn's tensor operations.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Tensor, TensorData};
use seqls_model::Transformer;
use seqls_model::tensors::{f32_data, f32_slice, f32_vec};

/// Sums the squares of every parameter's gradient.
struct GradSquares<'a> {
    grads: &'a GradientsParams,
    parts: Vec<Tensor<1>>,
}

impl ModuleVisitor for GradSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.parts.push(g.square().sum());
        }
    }
}

/// Multiplies every parameter's gradient by `factor`.
struct GradScale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl ModuleVisitor for GradScale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.factor));
        }
    }
}

/// On the CPU: the shards' gradients summed parameter by parameter (in shard order, in the first
/// shard's buffer) and, in the same pass, the sum of their squares (the global norm's square), in
/// place of burn's tensor additions and reductions.
struct HostShardSum {
    shards: Vec<GradientsParams>,
    sum: GradientsParams,
    squares: f64,
}

impl ModuleVisitor for HostShardSum {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let mut parts = self
            .shards
            .iter_mut()
            .filter_map(|g| g.remove::<D>(param.id));
        let Some(first) = parts.next() else {
            return;
        };
        let (shape, device) = (first.shape(), first.device());
        let mut total = f32_vec(first);
        for part in parts {
            let part = f32_data(part);
            for (t, &g) in total.iter_mut().zip(f32_slice(&part)) {
                *t += g;
            }
        }
        // Eight interleaved partial sums (a fixed order, vectorised), then f64 across parameters.
        let mut lanes = [0f32; 8];
        let chunks = total.chunks_exact(8);
        let tail: f32 = chunks.remainder().iter().map(|g| g * g).sum();
        for chunk in chunks {
            for j in 0..8 {
                lanes[j] += chunk[j] * chunk[j];
            }
        }
        self.squares += lanes.iter().map(|&x| x as f64).sum::<f64>() + tail as f64;
        let total = Tensor::<D>::from_data(TensorData::new(total, shape), &device);
        self.sum.register(param.id, total);
    }
}

/// On the CPU: multiplies every parameter's gradient by `factor` in place.
struct HostScale<'a> {
    grads: &'a mut GradientsParams,
    factor: f32,
}

impl ModuleVisitor for HostScale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            let (shape, device) = (g.shape(), g.device());
            let mut values = f32_vec(g);
            values.iter_mut().for_each(|g| *g *= self.factor);
            let scaled = Tensor::<D>::from_data(TensorData::new(values, shape), &device);
            self.grads.register(param.id, scaled);
        }
    }
}

/// The shards' gradients summed parameter by parameter in shard order, then rescaled so that their
/// global L2 norm is at most `max_norm` (0: no clipping): on the host ([`HostShardSum`],
/// [`HostScale`]) or in burn's tensor operations.
pub(crate) fn summed_and_clipped(
    model: &Transformer,
    shards: Vec<GradientsParams>,
    max_norm: f64,
    on_host: bool,
) -> GradientsParams {
    if on_host {
        let mut sum = HostShardSum {
            shards,
            sum: GradientsParams::new(),
            squares: 0.0,
        };
        model.visit(&mut sum);
        let mut grads = sum.sum;
        let norm = sum.squares.sqrt();
        if max_norm > 0.0 && norm > max_norm {
            model.visit(&mut HostScale {
                grads: &mut grads,
                factor: (max_norm / (norm + 1e-6)) as f32,
            });
        }
        grads
    } else {
        let mut sum = GradientsAccumulator::<Transformer>::new();
        for grads in shards {
            sum.accumulate(model, grads);
        }
        let mut grads = sum.grads();
        clip_global_norm(model, &mut grads, max_norm);
        grads
    }
}

/// Rescales `grads` so that their global L2 norm is at most `max_norm`; returns the norm before.
fn clip_global_norm(model: &Transformer, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let mut squares = GradSquares {
        grads,
        parts: vec![],
    };
    model.visit(&mut squares);
    let norm = Tensor::cat(squares.parts, 0)
        .sum()
        .into_scalar::<f64>()
        .sqrt();
    if max_norm > 0.0 && norm > max_norm {
        model.visit(&mut GradScale {
            grads,
            factor: max_norm / (norm + 1e-6),
        });
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use seqls_model::ModelConfig;

    /// Random gradients for every parameter of `model`, on the inner device.
    struct RandomGrads {
        grads: GradientsParams,
        scale: f64,
    }

    impl ModuleVisitor for RandomGrads {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let g = param
                .val()
                .inner()
                .random_like(burn::tensor::Distribution::Normal(0.0, self.scale));
            self.grads.register(param.id, g);
        }
    }

    fn values(model: &Transformer, grads: &GradientsParams) -> Vec<f32> {
        struct Collect<'a>(&'a GradientsParams, Vec<f32>);
        impl ModuleVisitor for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                self.1.extend(f32_vec(self.0.get::<D>(param.id).unwrap()));
            }
        }
        let mut collect = Collect(grads, vec![]);
        model.visit(&mut collect);
        collect.1
    }

    /// The host sum of the shards' gradients equals burn's accumulation bit for bit, and the host
    /// clipping equals burn's to float rounding, whether the norm is above the limit or not.
    #[test]
    fn host_sum_and_clipping_equal_the_tensor_path() {
        let device = Device::flex().autodiff();
        device.seed(4);
        let config = ModelConfig {
            d_model: 16,
            heads: 2,
            encoder_layers: 1,
            decoder_layers: 1,
            d_ff: 24,
            ..ModelConfig::default()
        };
        let model = config.init(37, &device);
        let shards = || {
            (0..3)
                .map(|_| {
                    let mut random = RandomGrads {
                        grads: GradientsParams::new(),
                        scale: 0.05,
                    };
                    model.visit(&mut random);
                    random.grads
                })
                .collect::<Vec<_>>()
        };
        let sets = shards();
        let copy = |sets: &[GradientsParams]| {
            sets.iter()
                .map(|g| {
                    let mut out = GradientsParams::new();
                    struct Copy<'a>(&'a GradientsParams, &'a mut GradientsParams);
                    impl ModuleVisitor for Copy<'_> {
                        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                            let g = self.0.get::<D>(param.id).unwrap();
                            self.1.register(param.id, g);
                        }
                    }
                    model.visit(&mut Copy(g, &mut out));
                    out
                })
                .collect::<Vec<_>>()
        };
        let unclipped_tensor = summed_and_clipped(&model, copy(&sets), 0.0, false);
        let unclipped_host = summed_and_clipped(&model, copy(&sets), 0.0, true);
        let want = values(&model, &unclipped_tensor);
        assert_eq!(values(&model, &unclipped_host), want);
        let norm = want
            .iter()
            .map(|&g| (g as f64) * (g as f64))
            .sum::<f64>()
            .sqrt();
        for max_norm in [norm / 3.0, norm * 2.0] {
            let tensor = values(
                &model,
                &summed_and_clipped(&model, copy(&sets), max_norm, false),
            );
            let host = values(
                &model,
                &summed_and_clipped(&model, copy(&sets), max_norm, true),
            );
            let worst = tensor
                .iter()
                .zip(&host)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-6, "max_norm {max_norm}: {worst}");
            let clipped = host
                .iter()
                .map(|&g| (g as f64) * (g as f64))
                .sum::<f64>()
                .sqrt();
            assert!(
                (clipped - norm.min(max_norm)).abs() < 1e-4 * norm,
                "{clipped}"
            );
        }
    }
}
