//! Row-wise softmax arithmetic on the CPU: the decoder step's log-softmax over the vocabulary (in
//! place, one pass per term, vectorised exponentials, AVX2 when the CPU has it), and the row maximum,
//! sum and shifted exponentials that the training loss ([`crate::loss`]) is built from, generic over
//! [`Real`] so the same code runs in `f32` for training and in `f64` against float64 references.

use std::ops::{Add, AddAssign, Div, Mul, Sub};

/// The floating-point types the row kernels run in.
pub trait Real:
    Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + AddAssign
    + Send
    + Sync
    + 'static
{
    const ZERO: Self;
    const NEG_INFINITY: Self;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    /// `e^x` for `x ≤ 0`: `exp_nonpositive` in `f32` (vectorised, 2e-7 relative), `exp` in `f64`.
    fn exp_nonpositive(self) -> Self;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn exp_nonpositive(self) -> Self {
        exp_nonpositive(self)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    fn from_f64(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn exp_nonpositive(self) -> Self {
        self.exp()
    }
}

/// `(max_k x_k, Σ_k x_k)` of a row, in eight lanes so that both vectorise (`f32::max` folds do not:
/// NaN rules); ≤ len/8 terms per partial sum. A NaN is skipped by the maximum and poisons the sum.
#[inline(always)]
pub(crate) fn max_and_sum<R: Real>(row: &[R]) -> (R, R) {
    let mut max = [R::NEG_INFINITY; 8];
    let mut sum = [R::ZERO; 8];
    let mut chunks = row.chunks_exact(8);
    for chunk in &mut chunks {
        for ((m, s), &x) in max.iter_mut().zip(sum.iter_mut()).zip(chunk) {
            *m = if x > *m { x } else { *m };
            *s += x;
        }
    }
    let mut m = R::NEG_INFINITY;
    let mut s = R::ZERO;
    for &x in chunks.remainder().iter().chain(&max) {
        m = if x > m { x } else { m };
    }
    for &x in chunks.remainder().iter().chain(&sum) {
        s += x;
    }
    (m, s)
}

/// `out_k = e^{(x_k − max)·scale}` for a row `x` whose maximum is `max` (`scale > 0`, so every exponent
/// is ≤ 0); returns `Σ_k out_k`, summed in eight lanes.
#[inline(always)]
pub(crate) fn exp_shifted<R: Real>(row: &[R], max: R, scale: R, out: &mut [R]) -> R {
    let mut partial = [R::ZERO; 8];
    let mut chunks = row.chunks_exact(8);
    let mut outs = out.chunks_exact_mut(8);
    for (chunk, o) in (&mut chunks).zip(&mut outs) {
        for ((p, o), &x) in partial.iter_mut().zip(o.iter_mut()).zip(chunk) {
            *o = ((x - max) * scale).exp_nonpositive();
            *p += *o;
        }
    }
    let mut sum = R::ZERO;
    for (o, &x) in outs.into_remainder().iter_mut().zip(chunks.remainder()) {
        *o = ((x - max) * scale).exp_nonpositive();
        sum += *o;
    }
    for p in partial {
        sum += p;
    }
    sum
}

/// [`log_softmax_in_place`] on each `vocab`-wide row of `scores`, compiled for AVX2 when the CPU has it
/// (the portable build targets SSE2: 4 lanes instead of 8). Both paths do the same per-lane arithmetic in
/// the same order (no fused multiply-adds), so they give bit-identical results.
pub(crate) fn log_softmax_rows(scores: &mut [f32], vocab: usize, temperature: f32) {
    #[inline(always)]
    fn rows(scores: &mut [f32], vocab: usize, temperature: f32) {
        for row in scores.chunks_mut(vocab) {
            log_softmax_in_place(row, temperature);
        }
    }
    // The same arithmetic in the same order under every target feature (Rust neither reassociates
    // nor contracts floating-point operations), so the results are bit-identical; wider registers
    // only compute more exponentials per instruction.
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        #[target_feature(enable = "avx512f")]
        fn rows_avx512(scores: &mut [f32], vocab: usize, temperature: f32) {
            rows(scores, vocab, temperature);
        }
        // SAFETY: the CPU supports AVX-512F (checked above).
        return unsafe { rows_avx512(scores, vocab, temperature) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn rows_avx2(scores: &mut [f32], vocab: usize, temperature: f32) {
            rows(scores, vocab, temperature);
        }
        // SAFETY: the CPU supports AVX2 (checked above).
        return unsafe { rows_avx2(scores, vocab, temperature) };
    }
    rows(scores, vocab, temperature);
}

/// `row ← log_softmax(row / temperature)`, in place: `x/T − m − ln Σ exp(x/T − m)` with `m` the row
/// maximum (so no exponent overflows). One pass over the row per term and no temporary tensors: on the
/// decoder's `[rows, vocab]` logits this is several times cheaper than the backend's five-op
/// composition, and the exponentials (`exp_nonpositive`) vectorise.
#[inline(always)]
fn log_softmax_in_place(row: &mut [f32], temperature: f32) {
    if temperature != 1.0 {
        row.iter_mut().for_each(|x| *x /= temperature);
    }
    // Lanes for the maximum and the sum, so both vectorise (`f32::max` folds do not: NaN rules).
    // The maximum does not depend on the order it is taken in, so it uses 32 lanes: four
    // independent chains of comparisons instead of one (one chain waits on each comparison's
    // latency). The sum keeps eight lanes, its order fixed: ≤ vocab/8 terms per partial sum keep f32
    // to ~1e-6 relative, and the results stay bit-identical to those of earlier builds.
    let mut lanes = [f32::NEG_INFINITY; 32];
    let mut chunks = row.chunks_exact(32);
    for chunk in &mut chunks {
        for (m, &x) in lanes.iter_mut().zip(chunk) {
            *m = if x > *m { x } else { *m };
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    // The exponentials of two chunks of eight at a time (one 16-lane register where there is one),
    // added to the partial sums chunk after chunk: the order of the additions is that of one chunk
    // at a time.
    let mut partial = [0f32; 8];
    let mut pairs = row.chunks_exact(16);
    for pair in &mut pairs {
        let mut e = [0f32; 16];
        for (e, &x) in e.iter_mut().zip(pair) {
            *e = exp_nonpositive(x - max);
        }
        for (p, &e) in partial.iter_mut().zip(&e[..8]) {
            *p += e;
        }
        for (p, &e) in partial.iter_mut().zip(&e[8..]) {
            *p += e;
        }
    }
    let mut chunks = pairs.remainder().chunks_exact(8);
    for chunk in &mut chunks {
        for (p, &x) in partial.iter_mut().zip(chunk) {
            *p += exp_nonpositive(x - max);
        }
    }
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|&x| exp_nonpositive(x - max))
        .sum();
    let sum = partial.iter().sum::<f32>() + tail;
    let shift = max + sum.ln();
    row.iter_mut().for_each(|x| *x -= shift);
}

/// `e^x` for `x ≤ 0` (a logit minus its row maximum), within 2e-7 relative of the exact value for
/// `x ≥ −87` (`e^−87 ≈ 1.6e−38`, the edge of the normal range; below it returns that value). Cody–Waite
/// reduction `x = n·ln 2 + r` with `n = round(x / ln 2)` and `|r| ≤ ln 2 / 2`, a degree-7 Taylor
/// polynomial for `e^r` (truncation error `|r|⁸/8! < 6e−9`), and `2^n` added to the exponent bits.
/// Branch-free, so the compiler vectorises it (libm's `expf` is a call per element).
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4; // ln 2 split so that n·LN2_HI is exact for |n| ≤ 128
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5·2²³: adding and subtracting it rounds to an integer
    let x = if x < -87.0 { -87.0 } else { x }; // not `f32::max`: its NaN rule blocks vectorising
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // The low mantissa bits of `shifted` hold `n` as an integer: no float → int cast (a saturating,
    // NaN-checking, scalar conversion in Rust).
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    f32::from_bits(p.to_bits().wrapping_add(n_bits << 23))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exponential_and_log_softmax_match_f64() {
        let mut worst = 0f64;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let exact = (x as f64).exp();
            worst = worst.max(((exp_nonpositive(x) as f64) - exact).abs() / exact);
        }
        assert!(worst < 2e-7, "relative error {worst}");
        assert!(exp_nonpositive(-1000.0) < 1e-37 && exp_nonpositive(0.0) == 1.0);
        for temperature in [1.0f32, 0.7] {
            let logits: Vec<f32> = (0..8003)
                .map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 9.0)
                .collect();
            let mut row = logits.clone();
            log_softmax_in_place(&mut row, temperature);
            let scaled: Vec<f64> = logits
                .iter()
                .map(|&x| x as f64 / temperature as f64)
                .collect();
            let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + scaled.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
            for (got, x) in row.iter().zip(&scaled) {
                assert!(
                    (*got as f64 - (x - lse)).abs() < 1e-5,
                    "{got} vs {}",
                    x - lse
                );
            }
            // The row-wise entry point (AVX2 where available) gives the same bits.
            let mut rows = [logits.clone(), logits.clone()].concat();
            log_softmax_rows(&mut rows, logits.len(), temperature);
            for chunk in rows.chunks(logits.len()) {
                assert!(
                    chunk
                        .iter()
                        .zip(&row)
                        .all(|(a, b)| a.to_bits() == b.to_bits())
                );
            }
        }
    }
}
