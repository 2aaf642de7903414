//! Inverted dropout with a fast, seedable mask: during training (on an autodiff device) each element
//! is kept with probability `1 − p` and scaled by `1 / (1 − p)`, else zeroed; at inference it is the
//! identity.
//!
//! burn's `nn::Dropout` draws its mask element by element through a generic distribution sampler and
//! then multiplies twice (mask, then scale); on the CPU that was about 15% of a training step. Here the
//! mask, already scaled, is a counter-based hash: element `i` of the masks drawn since the last seed
//! keeps or drops by two rounds of a 32-bit integer hash of `(key, i)`, with no dependency from one
//! element to the next, so the loop vectorises (a sequential 64-bit generator took 3% of a step). It is applied
//! with one multiplication. Each thread has its own key and counter, reset by [`seeded`] for every
//! shard of every update (the trainer runs a batch's shards as tasks of a thread pool), so masks are a
//! function of `(seed, update, shard)` and a resumed run stays bit-identical.

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

/// `n` mask values: `1/(1−p)` with probability `1 − p`, else 0. The element with counter value `c`
/// (counting from seeding, modulo 2³²) is dropped when `mix(mix(c ^ key_lo) ^ key_hi) < p·2³²`.
fn mask(n: usize, p: f64) -> Vec<f32> {
    let threshold = (p * 4_294_967_296.0) as u32; // p < 1: below 2³²
    let scale = (1.0 / (1.0 - p)) as f32;
    let Generator { key, counter } = STATE.get();
    let mut out = Vec::with_capacity(n);
    fill(out.spare_capacity_mut(), key, counter, threshold, scale);
    // SAFETY: `fill` wrote all `n` elements of the spare capacity.
    unsafe { out.set_len(n) };
    STATE.set(Generator {
        key,
        counter: counter.wrapping_add(n as u32),
    });
    out
}

/// Writes the mask values of counters `start, start + 1, …` into `out`; compiled for AVX2 when the
/// CPU has it (the portable build targets SSE2, which has no 32-bit lane multiply), same values.
fn fill(out: &mut [MaybeUninit<f32>], key: u64, start: u32, threshold: u32, scale: f32) {
    #[inline(always)]
    fn lanes(out: &mut [MaybeUninit<f32>], key: u64, start: u32, threshold: u32, scale: f32) {
        let (key_lo, key_hi) = (key as u32, (key >> 32) as u32);
        for (i, o) in out.iter_mut().enumerate() {
            let bits = mix(mix(start.wrapping_add(i as u32) ^ key_lo) ^ key_hi);
            o.write(if bits < threshold { 0.0 } else { scale });
        }
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn lanes_avx2(
            out: &mut [MaybeUninit<f32>],
            key: u64,
            start: u32,
            threshold: u32,
            scale: f32,
        ) {
            lanes(out, key, start, threshold, scale)
        }
        // SAFETY: the CPU has AVX2 (checked above).
        return unsafe { lanes_avx2(out, key, start, threshold, scale) };
    }
    lanes(out, key, start, threshold, scale)
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

    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let device = input.device();
        if self.prob == 0.0 || !device.is_autodiff() {
            return input;
        }
        let shape = input.shape();
        let values = mask(shape.num_elements(), self.prob);
        input * Tensor::from_data(TensorData::new(values, shape), &device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
