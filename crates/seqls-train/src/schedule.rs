//! Inverse-square-root learning-rate schedule with linear warm-up (fairseq `inverse_sqrt`):
//! `lr(s) = peak · s / w` for `s ≤ w`, then `peak · sqrt(w / s)`, where `s` is the 1-based update number
//! and `w` the warm-up length in updates.

/// Learning rate of update `step` (1-based).
pub fn inverse_sqrt_lr(peak: f64, warmup_steps: usize, step: usize) -> f64 {
    let s = step.max(1) as f64;
    let w = warmup_steps.max(1) as f64;
    if s <= w {
        peak * s / w
    } else {
        peak * (w / s).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_linearly_then_decays_as_inverse_sqrt() {
        assert!((inverse_sqrt_lr(1e-3, 100, 50) - 5e-4).abs() < 1e-15);
        assert!((inverse_sqrt_lr(1e-3, 100, 100) - 1e-3).abs() < 1e-15);
        assert!((inverse_sqrt_lr(1e-3, 100, 400) - 5e-4).abs() < 1e-15);
    }
}
