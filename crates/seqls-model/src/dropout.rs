//! Inverted dropout with a fast, seedable mask: during training (on an autodiff device) each element
//! is kept with probability `1 − p` and scaled by `1 / (1 − p)`, else zeroed; at inference it is the
//! identity.
//!
//! burn's `nn::Dropout` draws its mask element by element through a generic distribution sampler and
//! then multiplies twice (mask, then scale); on the CPU that was about 15% of a training step. Here the
//! mask, already scaled, comes from a wyrand generator (one 64-bit multiply per two elements) and is
//! applied with one multiplication. Each thread has its own generator, reseeded by [`seeded`] for every
//! shard of every update (the trainer runs a batch's shards as tasks of a thread pool), so masks are a
//! function of `(seed, update, shard)` and a resumed run stays bit-identical.

use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use std::cell::Cell;

thread_local! {
    static STATE: Cell<u64> = const { Cell::new(0x853c_49e6_748f_ea9b) };
}

/// Reseeds the dropout masks that [`Dropout`] draws on the calling thread.
pub fn seed(seed: u64) {
    STATE.set(seed ^ 0x853c_49e6_748f_ea9b);
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
    saved: u64,
}

impl Drop for SeedGuard {
    fn drop(&mut self) {
        STATE.set(self.saved);
    }
}

/// wyrand: the next 64 random bits.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0xa076_1d64_78bd_642f);
    let t = (*state as u128).wrapping_mul((*state ^ 0xe703_7ed1_a0b4_28db) as u128);
    ((t >> 64) ^ t) as u64
}

/// `n` mask values: `1/(1−p)` with probability `1 − p`, else 0.
fn mask(n: usize, p: f64) -> Vec<f32> {
    let threshold = (p * 4_294_967_296.0) as u64; // drop when a uniform u32 < p·2³²
    let scale = (1.0 / (1.0 - p)) as f32;
    let pick = |bits: u64| if bits < threshold { 0.0 } else { scale };
    let mut state = STATE.get();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n / 2 {
        let r = next(&mut state);
        out.push(pick(r & 0xffff_ffff));
        out.push(pick(r >> 32));
    }
    if n % 2 == 1 {
        out.push(pick(next(&mut state) & 0xffff_ffff));
    }
    STATE.set(state);
    out
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
    }
}
