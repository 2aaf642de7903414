//! Learning-rate schedules, both with a linear warm-up over the first `w` updates
//! (`lr(s) = peak · s / w` for `s ≤ w`, `s` the 1-based update number):
//!
//! - `inverse-sqrt` (fairseq `inverse_sqrt`): then `peak · sqrt(w / s)`.
//! - `linear-decay` (fairseq `polynomial_decay` with power 1 and end 0): then
//!   `peak · (T − s) / (T − w)`, reaching 0 at the last update `T = train.max_steps`. On a fixed
//!   budget of updates, annealing to zero converges much further than a schedule that never ends.

use seqls_run::config::Schedule;

/// Learning rate of update `step` (1-based) of `total_steps`.
pub fn learning_rate(
    schedule: Schedule,
    peak: f64,
    warmup_steps: usize,
    total_steps: usize,
    step: usize,
) -> f64 {
    let s = step.max(1) as f64;
    let w = warmup_steps.max(1) as f64;
    if s <= w {
        return peak * s / w;
    }
    match schedule {
        Schedule::InverseSqrt => peak * (w / s).sqrt(),
        Schedule::LinearDecay => {
            let t = total_steps as f64;
            peak * ((t - s) / (t - w).max(1.0)).max(0.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_linearly_then_decays_as_inverse_sqrt() {
        let lr = |s| learning_rate(Schedule::InverseSqrt, 1e-3, 100, 0, s);
        assert!((lr(50) - 5e-4).abs() < 1e-15);
        assert!((lr(100) - 1e-3).abs() < 1e-15);
        assert!((lr(400) - 5e-4).abs() < 1e-15);
    }

    #[test]
    fn linear_decay_reaches_zero_at_the_last_update() {
        let lr = |s| learning_rate(Schedule::LinearDecay, 1e-3, 100, 1100, s);
        assert!((lr(50) - 5e-4).abs() < 1e-15);
        assert!((lr(100) - 1e-3).abs() < 1e-15);
        assert!((lr(600) - 5e-4).abs() < 1e-15);
        assert_eq!(lr(1100), 0.0);
        assert_eq!(lr(2000), 0.0);
    }
}
