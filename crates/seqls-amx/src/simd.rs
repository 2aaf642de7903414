//! Rounding 32 contiguous f32 to bf16 at once: AVX512-BF16 `vcvtne2ps2bf16` (to nearest, ties to
//! even, as [`to_bf16`]; subnormal inputs become zero, as the tiles' products treat subnormal bf16
//! operands anyway), and the same in plain Rust off x86-64.

#[cfg(not(target_arch = "x86_64"))]
use crate::bf16::to_bf16;
use crate::layout::{Line, TILE_K, TILE_ROWS};

/// `src[0..32]` rounded to bf16.
///
/// # Safety
/// `src` must point at 32 readable f32; on x86-64 the CPU must have AVX-512 F, BW and BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(crate) unsafe fn round32(src: *const f32) -> Line {
    use std::arch::x86_64::*;
    let mut line = Line([0; TILE_K]);
    // SAFETY: the caller's promise; `line` is 64 writable bytes.
    unsafe {
        let low = _mm512_loadu_ps(src);
        let high = _mm512_loadu_ps(src.add(16));
        let rounded: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(high, low));
        _mm512_storeu_si512(line.0.as_mut_ptr().cast(), rounded);
    }
    line
}

/// `even[c], odd[c]` for `c < 16`, each rounded to bf16, interleaved: one tile row of `B`.
///
/// # Safety
/// `even` and `odd` must point at 16 readable f32 each; on x86-64 the CPU must have AVX-512 F, BW
/// and BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(crate) unsafe fn pairs(even: *const f32, odd: *const f32) -> Line {
    use std::arch::x86_64::*;
    let mut line = Line([0; TILE_K]);
    // Word `2c` from `even[c]` (word `c` of the rounded vector), `2c + 1` from `odd[c]` (`16 + c`).
    let order: [u16; TILE_K] = std::array::from_fn(|w| (w / 2 + (w % 2) * TILE_ROWS) as u16);
    // SAFETY: the caller's promise; `order` and `line` are 64 bytes each.
    unsafe {
        let both: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(
            _mm512_loadu_ps(odd),
            _mm512_loadu_ps(even),
        ));
        let order = _mm512_loadu_si512(order.as_ptr().cast());
        _mm512_storeu_si512(
            line.0.as_mut_ptr().cast(),
            _mm512_permutexvar_epi16(order, both),
        );
    }
    line
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn round32(src: *const f32) -> Line {
    // SAFETY: the caller's promise.
    Line(std::array::from_fn(|i| to_bf16(unsafe { *src.add(i) })))
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn pairs(even: *const f32, odd: *const f32) -> Line {
    // SAFETY: the caller's promise.
    Line(std::array::from_fn(|w| {
        to_bf16(unsafe { *(if w % 2 == 0 { even } else { odd }).add(w / 2) })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bf16::to_bf16;

    #[test]
    fn match_the_scalar_rounding() {
        if !(is_x86_feature_detected!("avx512bf16") && is_x86_feature_detected!("avx512bw")) {
            eprintln!("skipped: no AVX512-BF16");
            return;
        }
        let x: Vec<f32> = (0..64)
            .map(|i| (i as f32 - 20.3) * 1.7e-3 * (1.0 + i as f32))
            .collect();
        // SAFETY: 64 values; the CPU has the features (checked above).
        let (line, paired) =
            unsafe { (round32(x.as_ptr()), pairs(x.as_ptr(), x.as_ptr().add(32))) };
        for (&rounded, &value) in line.0.iter().zip(&x) {
            assert_eq!(rounded, to_bf16(value));
        }
        for c in 0..16 {
            assert_eq!(paired.0[2 * c], to_bf16(x[c]));
            assert_eq!(paired.0[2 * c + 1], to_bf16(x[32 + c]));
        }
    }
}
