//! What a model's distribution says beyond the reference: Müller, Kornblith & Hinton (2019) argue that
//! label smoothing erases the information in the logits about how similar the wrong classes are to the
//! right one, which is what a distilled student learns from. Measured here on translation, per target
//! position under teacher forcing.
//!
//! With `p` the model's distribution over the `K` vocabulary entries and `y` the reference, the
//! distribution over the `K − 1` other entries is `q_k = p_k / (1 − p_y)` (`k ≠ y`). Per position:
//!
//! - `entropy_ratio = H(q) / ln(K − 1)`, in [0, 1]: 1 when `q` is uniform (nothing left to learn
//!   from the wrong classes), small when it singles out a few;
//! - `kl_from_uniform = KL(q ‖ u) = ln(K − 1) − H(q)`, nats;
//! - `top5_mass`: the share of `q` on its five largest entries.
//!
//! [`InformationErasure`] holds their means over positions. A model that puts all its mass on the
//! reference (`p_y = 1` in float arithmetic) has no `q`; such positions are counted in `degenerate`
//! and left out of the means.

use serde::{Deserialize, Serialize};

/// Means over target positions (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InformationErasure {
    /// Positions in the means.
    pub tokens: usize,
    /// Positions where the model gave the reference all its mass.
    pub degenerate: usize,
    pub entropy_ratio: f64,
    pub kl_from_uniform: f64,
    pub top5_mass: f64,
}

/// Sums for [`InformationErasure`], one position at a time.
#[derive(Debug, Clone, Default)]
pub struct ErasureSums {
    tokens: usize,
    degenerate: usize,
    entropy_ratio: f64,
    kl: f64,
    top5: f64,
}

impl ErasureSums {
    /// Adds one position: the model's log-probabilities over the vocabulary and the reference id.
    pub fn add(&mut self, log_probs: &[f32], reference: usize) {
        let k = log_probs.len();
        if k < 3 || reference >= k {
            return;
        }
        let rest: f64 = log_probs
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != reference)
            .map(|(_, &lp)| (lp as f64).exp())
            .sum();
        if rest.is_nan() || rest <= 0.0 {
            self.degenerate += 1;
            return;
        }
        let log_rest = rest.ln();
        let (mut entropy, mut top) = (0.0, [0.0f64; 5]);
        for (i, &lp) in log_probs.iter().enumerate() {
            if i == reference {
                continue;
            }
            let log_q = lp as f64 - log_rest;
            let q = log_q.exp();
            if q > 0.0 {
                entropy -= q * log_q;
            }
            if q > top[4] {
                top[4] = q;
                top.sort_by(|a, b| b.total_cmp(a));
            }
        }
        let log_others = ((k - 1) as f64).ln();
        self.tokens += 1;
        self.entropy_ratio += entropy / log_others;
        self.kl += log_others - entropy;
        self.top5 += top.iter().sum::<f64>();
    }

    pub fn finish(&self) -> InformationErasure {
        let n = self.tokens.max(1) as f64;
        InformationErasure {
            tokens: self.tokens,
            degenerate: self.degenerate,
            entropy_ratio: self.entropy_ratio / n,
            kl_from_uniform: self.kl / n,
            top5_mass: self.top5 / n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(p: &[f64]) -> Vec<f32> {
        p.iter().map(|x| x.ln() as f32).collect()
    }

    #[test]
    fn uniform_wrong_classes_have_ratio_one_and_no_divergence() {
        // Reference 0 with 0.6; the other 6 classes share 0.4 equally.
        let mut p = vec![0.4 / 6.0; 7];
        p[0] = 0.6;
        let mut s = ErasureSums::default();
        s.add(&log(&p), 0);
        let e = s.finish();
        assert!((e.entropy_ratio - 1.0).abs() < 1e-6, "{e:?}");
        assert!(e.kl_from_uniform.abs() < 1e-6);
        assert!((e.top5_mass - 5.0 / 6.0).abs() < 1e-6);
    }

    #[test]
    fn a_peaked_remainder_matches_a_hand_computation() {
        // Reference 2; q over {0, 1, 3, 4} = (0.5, 0.25, 0.125, 0.125).
        let p = [0.25, 0.125, 0.5, 0.0625, 0.0625];
        let mut s = ErasureSums::default();
        s.add(&log(&p), 2);
        let e = s.finish();
        let h = -(0.5f64 * 0.5f64.ln() + 0.25 * 0.25f64.ln() + 2.0 * 0.125 * 0.125f64.ln());
        assert!((e.entropy_ratio - h / 4f64.ln()).abs() < 1e-6);
        assert!((e.kl_from_uniform - (4f64.ln() - h)).abs() < 1e-6);
        assert!((e.top5_mass - 1.0).abs() < 1e-6);
        // All mass on the reference: left out, counted.
        let mut d = ErasureSums::default();
        d.add(&[0.0, f32::NEG_INFINITY, f32::NEG_INFINITY], 0);
        assert_eq!(d.finish().degenerate, 1);
        assert_eq!(d.finish().tokens, 0);
    }
}
