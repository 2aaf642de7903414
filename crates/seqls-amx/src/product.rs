//! The products: operands packed (`pack.rs`), then 32 × 32 output blocks computed on the tiles
//! (`tiles.rs`) and added to or written over the output, on the thread pool when asked.

use rayon::prelude::*;

use crate::Amx;
use crate::layout::{BLOCK, TILE_ROWS};
use crate::pack::{PackedA, PackedB};
use crate::tiles::Tiles;
use crate::view::View;

/// The output, shared by the tasks that write its disjoint blocks.
#[derive(Clone, Copy)]
pub(crate) struct Out {
    pub(crate) ptr: *mut f32,
    pub(crate) row_stride: usize,
}

// SAFETY: the tasks of one product write disjoint blocks of the output.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// A 32 × 32 f32 block, row-major, for the blocks the output's edge cuts.
#[repr(C, align(64))]
struct EdgeBlock([f32; BLOCK * BLOCK]);

impl Amx {
    /// `bf16(a)·bf16(b)` (`a` `[m, k]`, `b` `[k, n]`) added to `out` `[m, n]` (row stride
    /// `out_row_stride`) when `accumulate`, else written over it without reading it; packing and
    /// blocks on the thread pool when `parallel`.
    ///
    /// # Safety
    /// `a` and `b` must address `[m, k]` and `[k, n]` elements inside live buffers, and `out` the
    /// `[m, n]` elements at row stride `out_row_stride` (initialised when `accumulate`).
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn product_into(
        &self,
        m: usize,
        n: usize,
        k: usize,
        (out, out_row_stride): (*mut f32, usize),
        accumulate: bool,
        a: View,
        b: View,
        parallel: bool,
    ) {
        // SAFETY: the caller's promise.
        unsafe {
            let b = PackedB::pack(b, k, n, parallel);
            self.packed_product_into(m, (out, out_row_stride), accumulate, a, &b, parallel);
        }
    }

    /// `bf16(a)·b` for a packed `b` `[k, n]` and `a` `[m, k]`, into `out` as in
    /// [`Amx::product_into`].
    ///
    /// # Safety
    /// As [`Amx::product_into`], with `k`, `n` those of `b`.
    pub unsafe fn packed_product_into(
        &self,
        m: usize,
        (out, out_row_stride): (*mut f32, usize),
        accumulate: bool,
        a: View,
        b: &PackedB,
        parallel: bool,
    ) {
        let (k, n) = (b.k, b.n);
        if m == 0 || n == 0 {
            return;
        }
        let out = Out {
            ptr: out,
            row_stride: out_row_stride,
        };
        if k == 0 {
            if !accumulate {
                for i in 0..m {
                    // SAFETY: row `i < m` of the output, the caller's promise.
                    unsafe { std::slice::from_raw_parts_mut(out.ptr.add(i * out.row_stride), n) }
                        .fill(0.0);
                }
            }
            return;
        }
        // SAFETY: the caller's promise.
        let a = unsafe { PackedA::pack(a, m, k, parallel) };
        // SAFETY: `a` is `[m, k]` packed, the caller's promise for the rest.
        unsafe { self.packed_operands_product_into(m, out, accumulate, &a, b, parallel) }
    }

    /// `a·b` for a packed `a` `[m, k]` and a packed `b` `[k, n]`, into `out` as in
    /// [`Amx::product_into`] (`m, n, k ≥ 1`).
    ///
    /// # Safety
    /// `a` must hold `[m, b.k]` (`a.lines_per_row` = `b.k_tiles`); `out` as in
    /// [`Amx::product_into`].
    pub(crate) unsafe fn packed_operands_product_into(
        &self,
        m: usize,
        out: Out,
        accumulate: bool,
        a: &PackedA,
        b: &PackedB,
        parallel: bool,
    ) {
        let n = b.n;
        debug_assert_eq!(a.lines_per_row, b.k_tiles);
        let (row_blocks, col_blocks) = (m.div_ceil(BLOCK), n.div_ceil(BLOCK));
        // Each task computes whole blocks, so the result does not depend on how they are shared.
        let run = |rows: std::ops::Range<usize>, cols: std::ops::Range<usize>| {
            // SAFETY: `detect` granted the tile state; the blocks stay inside the packed operands
            // and the output (the caller's promise), and tasks write disjoint blocks.
            unsafe { blocks(a, b, rows, cols, (m, n), out, accumulate) }
        };
        if parallel && row_blocks * col_blocks > 1 {
            if col_blocks >= row_blocks {
                (0..col_blocks)
                    .into_par_iter()
                    .for_each(|j| run(0..row_blocks, j..j + 1));
            } else {
                (0..row_blocks)
                    .into_par_iter()
                    .for_each(|i| run(i..i + 1, 0..col_blocks));
            }
        } else {
            run(0..row_blocks, 0..col_blocks);
        }
    }
}

/// The output blocks `rows × cols` (in units of 32) of `a·b`, on this thread: a whole block is
/// accumulated in place in the output; a block cut by the output's edge goes through a 32 × 32
/// scratch block.
///
/// # Safety
/// The tile state must be granted; `out` must hold the `[m, n]` output.
pub(crate) unsafe fn blocks(
    a: &PackedA,
    b: &PackedB,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    (m, n): (usize, usize),
    out: Out,
    accumulate: bool,
) {
    // SAFETY: the caller's promise.
    let tiles = unsafe { Tiles::load() };
    let mut edge = EdgeBlock([0.0; BLOCK * BLOCK]);
    let a_row_bytes = a.lines_per_row * 64;
    let strip_lines = b.k_tiles * TILE_ROWS;
    for i in rows {
        let a_rows = a.lines[i * BLOCK * a.lines_per_row..].as_ptr();
        for j in cols.clone() {
            let b_strips = (
                b.lines[2 * j * strip_lines..].as_ptr(),
                b.lines[(2 * j + 1) * strip_lines..].as_ptr(),
            );
            let (r0, c0) = (i * BLOCK, j * BLOCK);
            let (height, width) = (BLOCK.min(m - r0), BLOCK.min(n - c0));
            // SAFETY: `(r0, c0)` lies inside the output.
            let corner = unsafe { out.ptr.add(r0 * out.row_stride + c0) };
            let row = |r: usize| {
                // SAFETY: row `r0 + r < m`, columns `c0..c0 + width ≤ n` of the output.
                unsafe { std::slice::from_raw_parts_mut(corner.add(r * out.row_stride), width) }
            };
            if height == BLOCK && width == BLOCK {
                // SAFETY: 32 rows of `a` and two strips of `b` exist (both padded to whole
                // blocks); the 32 × 32 block of the output at `corner` exists.
                unsafe {
                    let c_row_bytes = out.row_stride * 4;
                    tiles.block(
                        a_rows,
                        a_row_bytes,
                        b_strips,
                        b.k_tiles,
                        corner,
                        c_row_bytes,
                        accumulate,
                    )
                };
            } else {
                if accumulate {
                    for r in 0..height {
                        edge.0[r * BLOCK..][..width].copy_from_slice(row(r));
                    }
                }
                // SAFETY: as above, with the scratch block as `C`.
                unsafe {
                    let c = edge.0.as_mut_ptr();
                    tiles.block(
                        a_rows,
                        a_row_bytes,
                        b_strips,
                        b.k_tiles,
                        c,
                        BLOCK * 4,
                        accumulate,
                    )
                };
                for r in 0..height {
                    row(r).copy_from_slice(&edge.0[r * BLOCK..][..width]);
                }
            }
        }
    }
}
