//! What the CPU operations written by hand share: matrix products over host buffers (the `gemm`
//! crate's f32 kernels, which burn-flex calls, or bf16 on AMX tiles: [`super::precision`]) and
//! burn-flex tensors read and built as `f32` buffers.

use burn::backend::flex::FlexTensor;
use burn::tensor::{Shape, TensorData};

use super::precision::amx;
use seqls_amx::{Amx, Initial};

/// burn-flex's size (`m·n·k`) from which a product runs on the thread pool.
const PARALLEL_THRESHOLD: usize = 192 * 192 * 192;

pub(crate) use seqls_amx::View;

/// The contract of [`seqls_amx::Amx::product_into`] (`out (+)= a·b`), in the precision of
/// [`super::precision::use_precision`]: the AMX tiles, or the `gemm` crate in f32; on the thread pool
/// from burn-flex's size on.
///
/// # Safety
/// As [`seqls_amx::Amx::product_into`].
pub(crate) unsafe fn product_into(
    m: usize,
    n: usize,
    k: usize,
    out: (*mut f32, usize),
    accumulate: bool,
    a: View,
    b: View,
) {
    // SAFETY: the caller's promise.
    unsafe { product_into_on(amx(), m, n, k, out, accumulate, a, b) }
}

/// [`product_into`] on the tiles when `tiles` is given, else in f32, whatever the process's
/// precision.
///
/// # Safety
/// As [`seqls_amx::Amx::product_into`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn product_into_on(
    tiles: Option<Amx>,
    m: usize,
    n: usize,
    k: usize,
    (out, out_row_stride): (*mut f32, usize),
    accumulate: bool,
    a: View,
    b: View,
) {
    let parallel = m.saturating_mul(n).saturating_mul(k) >= PARALLEL_THRESHOLD;
    if let Some(amx) = tiles {
        // SAFETY: the caller's promise.
        let initial = if accumulate {
            Initial::Output
        } else {
            Initial::Zero
        };
        unsafe { amx.product_into(m, n, k, (out, out_row_stride), initial, a, b, parallel) };
        return;
    }
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the caller's promise.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out,
            1,
            out_row_stride as isize,
            accumulate,
            a.ptr(),
            a.col_stride() as isize,
            a.row_stride() as isize,
            b.ptr(),
            b.col_stride() as isize,
            b.row_stride() as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `bias + a·b` (`a` `[m, k]`, `b` `[k, n]`, `bias` `[n]` added to every row) as a new row-major
/// `[m, n]` buffer, in the precision of [`super::precision::use_precision`]: on the tiles the bias is
/// loaded into them as each block's start ([`Initial::Row`]); in f32 it is written into every row,
/// which the product then adds to. The same sums in the same order either way.
///
/// # Safety
/// `a` and `b` must address `[m, k]` and `[k, n]` elements inside live buffers.
pub(crate) unsafe fn biased_product(
    m: usize,
    n: usize,
    k: usize,
    bias: &[f32],
    a: View,
    b: View,
) -> Vec<f32> {
    assert_eq!(bias.len(), n, "bias [n]");
    let mut out: Vec<f32> = Vec::with_capacity(m * n);
    let parallel = m.saturating_mul(n).saturating_mul(k) >= PARALLEL_THRESHOLD;
    if let Some(amx) = amx() {
        // SAFETY: the caller's promise for the operands; `out` has room for `m·n` values, all
        // written (nothing read), after which its length is set.
        unsafe {
            amx.product_into(
                m,
                n,
                k,
                (out.as_mut_ptr(), n),
                Initial::Row(bias),
                a,
                b,
                parallel,
            );
            out.set_len(m * n);
        }
        return out;
    }
    for _ in 0..m {
        out.extend_from_slice(bias);
    }
    // SAFETY: the caller's promise; `out` holds `m·n` initialised values.
    unsafe { product_into_on(None, m, n, k, (out.as_mut_ptr(), n), true, a, b) };
    out
}

/// `a·b` (`a` `[m, k]`, `b` `[k, n]`) as a new row-major `[m, n]` buffer, not zero-filled first.
///
/// # Safety
/// `a` and `b` must address `[m, k]` and `[k, n]` elements inside live buffers.
pub(crate) unsafe fn product(m: usize, n: usize, k: usize, a: View, b: View) -> Vec<f32> {
    // SAFETY: the caller's promise.
    unsafe { product_on(amx(), m, n, k, a, b) }
}

/// [`product`] on the tiles when `tiles` is given, else in f32 ([`product_into_on`]).
///
/// # Safety
/// As [`product`].
pub(crate) unsafe fn product_on(
    tiles: Option<Amx>,
    m: usize,
    n: usize,
    k: usize,
    a: View,
    b: View,
) -> Vec<f32> {
    let mut out: Vec<f32> = Vec::with_capacity(m * n);
    // SAFETY: the caller's promise for the operands; `out` has room for `m·n` values, all written
    // (nothing read), after which its length is set.
    unsafe {
        product_into_on(tiles, m, n, k, (out.as_mut_ptr(), n), false, a, b);
        out.set_len(m * n);
    }
    out
}

/// `Σ f(x_i, y_i)` in eight interleaved `f32` partial sums (a fixed order that the compiler can
/// vectorise).
#[inline(always)]
pub(crate) fn lane_sum(x: &[f32], y: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [0f32; 8];
    let (xs, ys) = (x.chunks_exact(8), y.chunks_exact(8));
    let (x_tail, y_tail) = (xs.remainder(), ys.remainder());
    for (xs, ys) in xs.zip(ys) {
        for j in 0..8 {
            lanes[j] += f(xs[j], ys[j]);
        }
    }
    let tail: f32 = x_tail.iter().zip(y_tail).map(|(&a, &b)| f(a, b)).sum();
    lanes.iter().sum::<f32>() + tail
}

/// `t` with contiguous values (copied only when they are not).
pub(crate) fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

/// The values of a contiguous f32 tensor (see [`contiguous`]).
pub(crate) fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("the CPU operations run on contiguous f32 tensors")
}

/// A tensor of `values` (no copy).
pub(crate) fn tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}
