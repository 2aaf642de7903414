//! The products: operands packed (`pack.rs`), then 32 × 32 output blocks computed on the tiles
//! (`tiles.rs`) and added to or written over the output, on the thread pool when asked.

use std::cell::RefCell;

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

thread_local! {
    /// This thread's edge block, zero-filled once (not at every product: attention's products
    /// of a few rows are edge blocks only). The rows and columns outside an edge hold what an
    /// earlier product left there; they are computed and never copied out.
    static EDGE: RefCell<EdgeBlock> = const { RefCell::new(EdgeBlock([0.0; BLOCK * BLOCK])) };
}

/// What a product's output starts from before `a·b` is added to it.
#[derive(Clone, Copy, Debug)]
pub enum Initial<'a> {
    /// Zero: the output is written over without being read.
    Zero,
    /// The output's own values (`out += a·b`).
    Output,
    /// The same `[n]` row in every row of the output, e.g. a linear layer's bias (`out = bias + a·b`),
    /// loaded into the tiles without being written to the output first.
    Row(&'a [f32]),
}

impl Amx {
    /// `bf16(a)·bf16(b)` (`a` `[m, k]`, `b` `[k, n]`) added to what `initial` says into `out`
    /// `[m, n]` (row stride `out_row_stride`); packing and blocks on the thread pool when
    /// `parallel`.
    ///
    /// # Safety
    /// `a` and `b` must address `[m, k]` and `[k, n]` elements inside live buffers, and `out` the
    /// `[m, n]` elements at row stride `out_row_stride` (initialised with [`Initial::Output`]); an
    /// [`Initial::Row`] must hold `n` values.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn product_into(
        &self,
        m: usize,
        n: usize,
        k: usize,
        (out, out_row_stride): (*mut f32, usize),
        initial: Initial,
        a: View,
        b: View,
        parallel: bool,
    ) {
        // SAFETY: the caller's promise.
        unsafe {
            let b = PackedB::pack(b, k, n, parallel);
            self.packed_product_into(m, (out, out_row_stride), initial, a, &b, parallel);
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
        initial: Initial,
        a: View,
        b: &PackedB,
        parallel: bool,
    ) {
        let (k, n) = (b.k, b.n);
        if let Initial::Row(row) = initial {
            assert_eq!(
                row.len(),
                n,
                "the initial row holds one value per output column"
            );
        }
        if m == 0 || n == 0 {
            return;
        }
        let out = Out {
            ptr: out,
            row_stride: out_row_stride,
        };
        if k == 0 {
            for i in 0..m {
                // SAFETY: row `i < m` of the output, the caller's promise.
                let row =
                    unsafe { std::slice::from_raw_parts_mut(out.ptr.add(i * out.row_stride), n) };
                match initial {
                    Initial::Zero => row.fill(0.0),
                    Initial::Output => {}
                    Initial::Row(values) => row.copy_from_slice(values),
                }
            }
            return;
        }
        // SAFETY: the caller's promise.
        let a = unsafe { PackedA::pack(a, m, k, parallel) };
        // SAFETY: `a` is `[m, k]` packed, the caller's promise for the rest.
        unsafe { self.packed_operands_product_into(m, out, initial, &a, b, parallel) }
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
        initial: Initial,
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
            unsafe { blocks(a, b, rows, cols, (m, n), out, initial) }
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
/// computed in place in the output; a block cut by the output's edge goes through a 32 × 32
/// scratch block.
///
/// # Safety
/// The tile state must be granted; `out` must hold the `[m, n]` output (initialised with
/// [`Initial::Output`]); an [`Initial::Row`] must hold `n` values.
pub(crate) unsafe fn blocks(
    a: &PackedA,
    b: &PackedB,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    (m, n): (usize, usize),
    out: Out,
    initial: Initial,
) {
    EDGE.with_borrow_mut(|edge| {
        // SAFETY: the caller's promise.
        let tiles = unsafe { Tiles::load() };
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
                // A whole block is computed in place; one the edge cuts, in the scratch block.
                let whole = height == BLOCK && width == BLOCK;
                let (c, c_row_bytes, init) = if whole {
                    let c_row_bytes = out.row_stride * 4;
                    let init = match initial {
                        Initial::Zero => None,
                        Initial::Output => Some((corner.cast_const(), c_row_bytes)),
                        // SAFETY: columns `c0..c0 + 32` of the row (`n` values, the caller's promise).
                        Initial::Row(values) => Some((unsafe { values.as_ptr().add(c0) }, 0)),
                    };
                    (corner, c_row_bytes, init)
                } else {
                    // The block's starting values into the scratch block, row by row.
                    for r in 0..height {
                        let scratch = &mut edge.0[r * BLOCK..][..width];
                        match initial {
                            Initial::Zero => break,
                            Initial::Output => scratch.copy_from_slice(row(r)),
                            Initial::Row(values) => {
                                scratch.copy_from_slice(&values[c0..c0 + width])
                            }
                        }
                    }
                    let c = edge.0.as_mut_ptr();
                    let starts = !matches!(initial, Initial::Zero);
                    (c, BLOCK * 4, starts.then_some((c.cast_const(), BLOCK * 4)))
                };
                // SAFETY: 32 rows of `a` and two strips of `b` exist (both padded to whole blocks);
                // `c` holds a 32 × 32 block (the output's at `corner`, or the scratch block), and
                // `init` 32 rows (or one row read 32 times) of 32 values.
                unsafe {
                    tiles.block(
                        a_rows,
                        a_row_bytes,
                        b_strips,
                        b.k_tiles,
                        (c, c_row_bytes),
                        init,
                    )
                };
                if !whole {
                    for r in 0..height {
                        row(r).copy_from_slice(&edge.0[r * BLOCK..][..width]);
                    }
                }
            }
        }
    })
}
