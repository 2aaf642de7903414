//! Inverted dropout with a fast, seedable mask: during training (on an autodiff device) each element
//! is kept with probability `1 − p` and scaled by `1 / (1 − p)`, else zeroed; at inference it is the
//! identity.
//!
//! burn's `nn::Dropout` draws its mask element by element through a generic distribution sampler and
//! then multiplies twice (mask, then scale); on the CPU that was about 15% of a training step. Here the
//! mask, already scaled, is a counter-based hash: element `i` of the masks drawn since the last seed
//! keeps or drops by two rounds of a 32-bit integer hash of `(key, i)`, with no dependency from one
//! element to the next, so the loop vectorises (a sequential 64-bit generator took 3% of a step). On
//! the CPU it is one operation ([`DropoutOps`]) that draws the mask while multiplying, and whose
//! backward pass draws it again; elsewhere the mask is a tensor to multiply by. Each thread has its
//! own key and counter, reset by [`seeded`] for every shard of every update (the trainer runs a
//! batch's shards as tasks of a thread pool), so masks are a function of `(seed, update, shard)` and a
//! resumed run stays bit-identical.

use crate::tensors::on_cpu;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use std::cell::Cell;
use std::mem::MaybeUninit;

/// The mask generator of a thread: a 64-bit key and the number of mask elements drawn since seeding
/// (modulo 2³²).
#[derive(Clone, Copy)]
struct Generator {
    key: u64,
    counter: u32,
}

thread_local! {
    static STATE: Cell<Generator> = const {
        Cell::new(Generator { key: 0x853c_49e6_748f_ea9b, counter: 0 })
    };
}

/// Reseeds the dropout masks that [`Dropout`] draws on the calling thread.
pub fn seed(seed: u64) {
    STATE.set(Generator {
        key: seed ^ 0x853c_49e6_748f_ea9b,
        counter: 0,
    });
}

/// Reseeds the calling thread's masks until the guard is dropped, then restores the generator as it
/// was. A work-stealing thread pool may run a second shard on a thread while the first waits inside
/// an operation (nested, last in first out); each shard's masks stay a function of its own seed.
pub fn seeded(seed: u64) -> SeedGuard {
    let saved = STATE.get();
    self::seed(seed);
    SeedGuard { saved }
}

/// Restores the thread's mask generator when dropped (see [`seeded`]).
pub struct SeedGuard {
    saved: Generator,
}

impl Drop for SeedGuard {
    fn drop(&mut self) {
        STATE.set(self.saved);
    }
}

/// A 32-bit integer hash with full avalanche (Wellons' "lowbias32").
#[inline(always)]
fn mix(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// `x ⊙ mask` where the mask value of element `i` is `1/(1−p)` with probability `1 − p`, else 0: it is
/// dropped when `mix(mix(c ^ key_lo) ^ key_hi) < p·2³²` for its counter `c = start + i` (modulo 2³²).
/// Compiled for AVX2 when the CPU has it (the portable build targets SSE2, which has no 32-bit lane
/// multiply), same values.
pub(crate) fn apply(x: &[f32], key: u64, start: u32, p: f64) -> Vec<f32> {
    #[inline(always)]
    fn lanes(x: &[f32], out: &mut [MaybeUninit<f32>], key: u64, start: u32, p: f64) {
        let threshold = (p * 4_294_967_296.0) as u32; // p < 1: below 2³²
        let scale = (1.0 / (1.0 - p)) as f32;
        let (key_lo, key_hi) = (key as u32, (key >> 32) as u32);
        for (i, (o, &x)) in out.iter_mut().zip(x).enumerate() {
            let bits = mix(mix(start.wrapping_add(i as u32) ^ key_lo) ^ key_hi);
            o.write(x * if bits < threshold { 0.0 } else { scale });
        }
    }
    let mut out = Vec::with_capacity(x.len());
    let spare = &mut out.spare_capacity_mut()[..x.len()];
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn lanes_avx2(x: &[f32], out: &mut [MaybeUninit<f32>], key: u64, start: u32, p: f64) {
            lanes(x, out, key, start, p)
        }
        // SAFETY: the CPU has AVX2 (checked above).
        unsafe { lanes_avx2(x, spare, key, start, p) };
    } else {
        lanes(x, spare, key, start, p);
    }
    #[cfg(not(target_arch = "x86_64"))]
    lanes(x, spare, key, start, p);
    // SAFETY: `lanes` wrote all `x.len()` elements of the spare capacity.
    unsafe { out.set_len(x.len()) };
    out
}

/// Takes `n` mask elements from the calling thread's generator: its key and the first counter.
fn draw(n: usize) -> (u64, u32) {
    let Generator { key, counter } = STATE.get();
    STATE.set(Generator {
        key,
        counter: counter.wrapping_add(n as u32),
    });
    (key, counter)
}

/// Dropout as a backend operation on the CPU: one pass that draws the mask and multiplies, and a
/// backward pass that draws the same mask again from `(key, start)` (`∂L/∂x = ∂L/∂y ⊙ mask`), so no
/// mask tensor is stored or copied. Results are those of multiplying by the mask as a tensor.
#[backend_extension(Flex, Autodiff)]
pub trait DropoutOps: Backend {
    /// `x ⊙ mask` with the mask elements of counters `start, start + 1, …` under `key`.
    fn fused_dropout(x: FloatTensor<Self>, key: u64, start: u32, prob: f64) -> FloatTensor<Self>;
}

impl DropoutOps for Flex {
    fn fused_dropout(x: FlexTensor, key: u64, start: u32, prob: f64) -> FlexTensor {
        let shape = x.layout().shape().clone();
        let x = match x.as_slice::<f32>() {
            Some(_) => x,
            None => x.to_contiguous(),
        };
        let values = x.as_slice::<f32>().expect("dropout runs on f32 tensors");
        FlexTensor::from_data(TensorData::new(apply(values, key, start, prob), shape))
    }
}

impl<B: Backend + DropoutOps, C: CheckpointStrategy> DropoutOps for Autodiff<B, C> {
    fn fused_dropout(x: FloatTensor<Self>, key: u64, start: u32, prob: f64) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct FusedDropout;

        impl<B: Backend + DropoutOps> Backward<B, 1> for FusedDropout {
            /// The mask's key, first counter and probability.
            type State = (u64, u32, f64);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (key, start, prob) = ops.state;
                if let Some(node) = node {
                    grads.register::<B>(node.id, B::fused_dropout(grad, key, start, prob));
                }
            }
        }

        match FusedDropout
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                (key, start, prob),
                B::fused_dropout(x.into_primitive(), key, start, prob),
            ),
            OpsKind::UnTracked(prep) => {
                prep.finish(B::fused_dropout(x.into_primitive(), key, start, prob))
            }
        }
    }
}

/// Dropout with probability `prob` (see the module documentation).
#[derive(Module, Debug)]
pub struct Dropout {
    pub prob: f64,
}

impl Dropout {
    pub fn new(prob: f64) -> Self {
        // Cannot fail on user input: `ModelConfig::validate` refuses a dropout outside [0, 1).
        assert!(
            (0.0..1.0).contains(&prob),
            "dropout must be in [0, 1), got {prob}"
        );
        Dropout { prob }
    }

    /// The mask of `n` values on `device` when dropout is active (training on an autodiff device,
    /// `p > 0`): the calling thread's generator key and the first counter, the generator advanced by
    /// `n`. `None` (nothing drawn) at inference or with `p = 0`.
    pub(crate) fn draw(&self, n: usize, device: &burn::tensor::Device) -> Option<(u64, u32)> {
        (self.prob > 0.0 && device.is_autodiff()).then(|| draw(n))
    }

    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let (device, shape) = (input.device(), input.shape());
        let Some((key, start)) = self.draw(shape.num_elements(), &device) else {
            return input;
        };
        if on_cpu(&device) {
            let out = <Dispatch as DropoutOps>::fused_dropout(
                input.into_dispatch(),
                key,
                start,
                self.prob,
            );
            return Tensor::from_dispatch(out);
        }
        let ones = vec![1f32; shape.num_elements()];
        let mask = apply(&ones, key, start, self.prob);
        input * Tensor::from_data(TensorData::new(mask, shape), &device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    /// The next `n` mask values of the calling thread's generator.
    fn mask(n: usize, p: f64) -> Vec<f32> {
        let (key, start) = draw(n);
        apply(&vec![1.0; n], key, start, p)
    }

    /// On the CPU under autodiff, [`Dropout`] (the fused operation) gives the same output and input
    /// gradient, bit for bit, as multiplying by the same mask as a tensor.
    #[test]
    fn fused_dropout_equals_the_mask_as_a_tensor() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let x = Tensor::<2>::random([37, 29], burn::tensor::Distribution::Default, &device);
        let w = Tensor::<2>::random([29, 37], burn::tensor::Distribution::Default, &device);
        let run = |fused: bool| {
            let x = x.clone().require_grad();
            // Transposed: the operation's input need not be contiguous.
            let input = x.clone().swap_dims(0, 1);
            seed(11);
            let y = if fused {
                Dropout::new(0.3).forward(input)
            } else {
                let m = mask(29 * 37, 0.3);
                input * Tensor::from_data(TensorData::new(m, [29, 37]), &device)
            };
            let grads = (y.clone() * w.clone()).sum().backward();
            let y = crate::tensors::f32_vec(y);
            (y, crate::tensors::f32_vec(x.grad(&grads).unwrap()))
        };
        let (want, got) = (run(false), run(true));
        assert_eq!(got, want);
        assert!(got.0.iter().filter(|&&v| v == 0.0).count() > 200);
    }

    #[test]
    fn keeps_the_right_share_scaled_and_is_reproducible() {
        seed(7);
        let a = mask(100_001, 0.1);
        seed(7);
        let b = mask(100_001, 0.1);
        assert_eq!(a, b);
        let kept = a.iter().filter(|&&x| x != 0.0).count() as f64 / a.len() as f64;
        assert!((kept - 0.9).abs() < 0.005, "kept {kept}");
        assert!(a.iter().all(|&x| x == 0.0 || (x - 1.0 / 0.9).abs() < 1e-6));
        // The mean of the scaled mask is 1: dropout keeps expectations.
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / a.len() as f64;
        assert!((mean - 1.0).abs() < 0.01);
        // Another seed, or the next draw of the same seed, gives another mask: drops agree only at
        // the chance rate (0.1² of elements dropped in both).
        let both_dropped = |x: &[f32], y: &[f32]| {
            x.iter()
                .zip(y)
                .filter(|(a, b)| **a == 0.0 && **b == 0.0)
                .count() as f64
                / x.len() as f64
        };
        seed(8);
        let other = mask(100_001, 0.1);
        let next = {
            seed(7);
            let _ = mask(100_001, 0.1);
            mask(100_001, 0.1)
        };
        for m in [&other, &next] {
            assert!(
                (both_dropped(&a, m) - 0.01).abs() < 0.002,
                "{}",
                both_dropped(&a, m)
            );
        }
    }
}
