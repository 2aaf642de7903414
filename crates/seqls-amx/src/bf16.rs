//! The bfloat16 format: the upper 16 bits of an IEEE-754 `f32` (8 exponent bits, 7 stored mantissa
//! bits, so a relative rounding error of at most 2⁻⁸ = 0.39%).

/// `x` rounded to the nearest bf16, ties to even, as its 16 bits; a NaN stays a (quiet) NaN.
///
/// Rounding adds `0x7FFF + lsb` to the f32 bits, where `lsb` is the lowest bit kept, and drops the
/// low 16 bits: below half an ulp rounds down, above rounds up, exactly half rounds to even.
#[inline(always)]
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16;
    let quiet_nan = (bits >> 16) | 0x0040;
    // In integers (exponent all ones, mantissa non-zero), so that the loops over it vectorise.
    let is_nan = bits & 0x7FFF_FFFF > 0x7F80_0000;
    (if is_nan { quiet_nan } else { rounded }) as u16
}

/// The f32 value of bf16 bits `h` (exact).
#[inline(always)]
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_nearest_even() {
        assert_eq!(from_bf16(to_bf16(1.0)), 1.0);
        // 1 + 2⁻⁸ is exactly half way between 1 and 1 + 2⁻⁷: ties to the even mantissa, 1.
        assert_eq!(from_bf16(to_bf16(1.0 + 2f32.powi(-8))), 1.0);
        // 1 + 3·2⁻⁸ is half way between 1 + 2⁻⁷ (odd) and 1 + 2⁻⁶ (even): up.
        assert_eq!(
            from_bf16(to_bf16(1.0 + 3.0 * 2f32.powi(-8))),
            1.0 + 2f32.powi(-6)
        );
        // Just above half way rounds up.
        assert_eq!(
            from_bf16(to_bf16(1.0 + 2f32.powi(-8) + 2f32.powi(-20))),
            1.0 + 2f32.powi(-7)
        );
        assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
        assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        // The largest f32 rounds past the largest bf16 to infinity, as IEEE rounding does.
        assert_eq!(from_bf16(to_bf16(f32::MAX)), f32::INFINITY);
    }

    #[test]
    fn relative_error_is_at_most_half_an_ulp() {
        let mut x = 1e-30f32;
        while x < 1e30 {
            let r = from_bf16(to_bf16(x));
            assert!(((r - x) / x).abs() <= 2f32.powi(-8), "{x} → {r}");
            x *= 1.37;
        }
    }
}
