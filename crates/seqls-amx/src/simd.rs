//! Rounding 32 contiguous f32 to bf16 at once: AVX512-BF16 `vcvtne2ps2bf16` (to nearest, ties to
//! even, as [`to_bf16`]; subnormal inputs become zero, as the tiles' products treat subnormal bf16
//! operands anyway), and the same in plain Rust off x86-64.

#[cfg(not(target_arch = "x86_64"))]
use crate::bf16::to_bf16;
use crate::layout::{Line, TILE_K, TILE_ROWS};

/// `src[0..len]` rounded to bf16, zero after (`len ≤ 32`; nothing past `len` is read).
///
/// # Safety
/// `src` must point at `len` readable f32; on x86-64 the CPU must have AVX-512 F, BW and BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(crate) unsafe fn round(src: *const f32, len: usize) -> Line {
    use std::arch::x86_64::*;
    let mut line = Line([0; TILE_K]);
    // SAFETY: the masked loads read `src[0..len]` only (the caller's promise); `line` is 64
    // writable bytes.
    unsafe {
        let low = _mm512_maskz_loadu_ps(mask(len), src);
        let high = _mm512_maskz_loadu_ps(mask(len.saturating_sub(16)), src.wrapping_add(16));
        let rounded: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(high, low));
        _mm512_storeu_si512(line.0.as_mut_ptr().cast(), rounded);
    }
    line
}

/// `even[c], odd[c]` for `c < len`, each rounded to bf16, interleaved, zero after (`len ≤ 16`): one
/// tile row of `B`. A missing row (`None`, past the matrix) counts as zeros.
///
/// # Safety
/// `even` and `odd` must point at `len` readable f32 each; on x86-64 the CPU must have AVX-512 F,
/// BW and BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(crate) unsafe fn pairs(even: Option<*const f32>, odd: Option<*const f32>, len: usize) -> Line {
    use std::arch::x86_64::*;
    let mut line = Line([0; TILE_K]);
    // Word `2c` from `even[c]` (word `c` of the rounded vector), `2c + 1` from `odd[c]` (`16 + c`).
    let order: [u16; TILE_K] = std::array::from_fn(|w| (w / 2 + (w % 2) * TILE_ROWS) as u16);
    // SAFETY: the masked loads read `len` values of each row (the caller's promise); `order` and
    // `line` are 64 bytes each.
    unsafe {
        let load = |row: Option<*const f32>| match row {
            Some(p) => _mm512_maskz_loadu_ps(mask(len), p),
            None => _mm512_setzero_ps(),
        };
        let both: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(load(odd), load(even)));
        let order = _mm512_loadu_si512(order.as_ptr().cast());
        _mm512_storeu_si512(
            line.0.as_mut_ptr().cast(),
            _mm512_permutexvar_epi16(order, both),
        );
    }
    line
}

/// The lanes `0..len` of 16 (`len` clamped to 16).
#[cfg(target_arch = "x86_64")]
fn mask(len: usize) -> u16 {
    if len >= 16 {
        u16::MAX
    } else {
        (1u16 << len) - 1
    }
}

/// The 16 × 16 matrix of 32-bit words `rows` (16 bf16 pairs a row), transposed in place: four
/// rounds of swapping the off-diagonal blocks of every 2h × 2h block (h = 8, 4, 2, 1), each round
/// one `vpermt2d` per row.
///
/// # Safety
/// On x86-64 the CPU must have AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn transpose16(rows: &mut [[u32; 16]; 16]) {
    use std::arch::x86_64::*;
    // SAFETY: every load and store is of one 64-byte row of `rows` or of an index array.
    unsafe {
        let mut r: [__m512i; 16] =
            std::array::from_fn(|i| _mm512_loadu_si512(rows[i].as_ptr().cast()));
        for h in [8usize, 4, 2, 1] {
            // Row i (bit h clear) keeps the first h words of each 2h-word group and takes row
            // i + h's first h; row i + h gets the second halves of both.
            let upper: [u32; 16] = std::array::from_fn(|c| {
                if c % (2 * h) < h {
                    c as u32
                } else {
                    (16 + c - h) as u32
                }
            });
            let lower: [u32; 16] = std::array::from_fn(|c| {
                if c % (2 * h) < h {
                    (c + h) as u32
                } else {
                    (16 + c) as u32
                }
            });
            let (upper, lower) = (
                _mm512_loadu_si512(upper.as_ptr().cast()),
                _mm512_loadu_si512(lower.as_ptr().cast()),
            );
            for i in (0..16).filter(|i| i & h == 0) {
                let (a, b) = (r[i], r[i + h]);
                r[i] = _mm512_permutex2var_epi32(a, upper, b);
                r[i + h] = _mm512_permutex2var_epi32(a, lower, b);
            }
        }
        for (row, v) in rows.iter_mut().zip(r) {
            _mm512_storeu_si512(row.as_mut_ptr().cast(), v);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn transpose16(rows: &mut [[u32; 16]; 16]) {
    for i in 0..16 {
        for j in 0..i {
            let t = rows[i][j];
            rows[i][j] = rows[j][i];
            rows[j][i] = t;
        }
    }
}

/// A tile row's 16 pairs as 32-bit words, and back: the same 64 bytes (a transposition of words
/// moves pairs whole, whatever the byte order).
pub(crate) fn as_words(line: Line) -> [u32; 16] {
    // SAFETY: both are 64 bytes of plain integers; every bit pattern is valid for either.
    unsafe { std::mem::transmute::<[u16; TILE_K], [u32; 16]>(line.0) }
}

pub(crate) fn from_words(words: [u32; 16]) -> Line {
    // SAFETY: as in `as_words`.
    Line(unsafe { std::mem::transmute::<[u32; 16], [u16; TILE_K]>(words) })
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn round(src: *const f32, len: usize) -> Line {
    // SAFETY: the caller's promise.
    Line(std::array::from_fn(|i| {
        if i < len {
            to_bf16(unsafe { *src.add(i) })
        } else {
            0
        }
    }))
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn pairs(even: Option<*const f32>, odd: Option<*const f32>, len: usize) -> Line {
    Line(std::array::from_fn(|w| {
        let row = if w % 2 == 0 { even } else { odd };
        match row {
            // SAFETY: the caller's promise.
            Some(p) if w / 2 < len => to_bf16(unsafe { *p.add(w / 2) }),
            _ => 0,
        }
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
        for len in [0, 1, 15, 16, 17, 31, 32] {
            // SAFETY: 64 values; the CPU has the features (checked above).
            let (rounded, paired) = unsafe {
                let pair_len = len.min(16);
                (
                    round(x.as_ptr(), len),
                    pairs(Some(x.as_ptr()), Some(x.as_ptr().add(32)), pair_len),
                )
            };
            for (i, &r) in rounded.0.iter().enumerate() {
                assert_eq!(r, if i < len { to_bf16(x[i]) } else { 0 }, "len {len}");
            }
            for c in 0..16 {
                let inside = c < len.min(16);
                assert_eq!(paired.0[2 * c], if inside { to_bf16(x[c]) } else { 0 });
                assert_eq!(
                    paired.0[2 * c + 1],
                    if inside { to_bf16(x[32 + c]) } else { 0 }
                );
            }
            assert_eq!(from_words(as_words(paired)).0, paired.0);
        }
        // SAFETY: as above.
        let half = unsafe { pairs(None, Some(x.as_ptr()), 16) };
        for (pair, &value) in half.0.chunks_exact(2).zip(&x) {
            assert_eq!((pair[0], pair[1]), (0, to_bf16(value)));
        }
    }

    #[test]
    fn transposes() {
        if !is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: no AVX-512");
            return;
        }
        let mut m: [[u32; 16]; 16] =
            std::array::from_fn(|i| std::array::from_fn(|j| (i * 100 + j) as u32));
        // SAFETY: the CPU has AVX-512 F (checked above).
        unsafe { transpose16(&mut m) };
        for (i, row) in m.iter().enumerate() {
            for (j, &x) in row.iter().enumerate() {
                assert_eq!(x, (j * 100 + i) as u32);
            }
        }
    }
}
