//! The operands of a product in the layouts the tiles load, rounded to bf16 on the way.
//!
//! A tile is 16 rows of 64 bytes. The left operand `A` `[m, k]` is loaded 16 rows × 32 values of
//! `k` at a time, so it is stored row-major as `[m rounded up to 32, k rounded up to 32]`. The right
//! operand `B` `[k, n]` is loaded in the pair ("VNNI") layout that `tdpbf16ps` multiplies: tile row
//! `r` holds, for 16 columns `c`, the pair `B[2r][c], B[2r + 1][c]`. Each such 32 × 16 tile is one
//! contiguous kilobyte, and the tiles of a 16-column strip follow each other along `k`. Padding is
//! zero, so padded rows and columns add nothing.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::layout::{BLOCK, Line, TILE_K, TILE_ROWS};
use crate::simd;
use crate::view::View;

/// Blocks of 32 rows (of `A`) or strips of 16 columns (of `B`) one packing task packs: 256 rows or
/// columns, so that an operand read along them is read a kilobyte at a time.
const TASK: usize = 8;

pub(crate) fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

/// Packs `len` lines, `chunk` per task (each task writes all of its lines, padding included, so
/// nothing is zero-filled first), on the thread pool when `parallel`.
fn pack_lines(
    len: usize,
    chunk: usize,
    parallel: bool,
    task: impl Fn(usize, &mut [MaybeUninit<Line>]) + Sync,
) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::with_capacity(len);
    let spare = &mut lines.spare_capacity_mut()[..len];
    if chunk > 0 && parallel {
        spare
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, out)| task(i, out));
    } else if chunk > 0 {
        spare
            .chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, out)| task(i, out));
    }
    // SAFETY: every task wrote every line of its chunk, and the chunks cover `0..len`.
    unsafe { lines.set_len(len) };
    lines
}

/// `A` `[m, k]` as bf16, row-major `[round_up(m, 32), round_up(k, 32)]`, zero-padded.
#[derive(Default)]
pub(crate) struct PackedA {
    pub(crate) lines: Vec<Line>,
    /// Lines per row: `round_up(k, 32) / 32`.
    pub(crate) lines_per_row: usize,
}

impl PackedA {
    /// # Safety
    /// `a` must address `[m, k]` elements inside a live buffer; the CPU must have AVX-512 F, BW and
    /// BF16 (as every CPU with AMX does: [`crate::Amx::detect`] checks).
    pub(crate) unsafe fn pack(a: View, m: usize, k: usize, parallel: bool) -> Self {
        let lines_per_row = round_up(k, TILE_K) / TILE_K;
        let block_lines = BLOCK * lines_per_row;
        let lines = pack_lines(
            round_up(m, BLOCK) * lines_per_row,
            TASK * block_lines,
            parallel,
            |task, out| {
                // Along `k` outermost, so that the task's 256 rows are read together.
                let mut blocks: Vec<_> = out.chunks_mut(block_lines).collect();
                for kt in 0..lines_per_row {
                    for (b, block) in blocks.iter_mut().enumerate() {
                        // SAFETY: the caller's promise; `block` holds 32 rows of `lines_per_row`
                        // lines.
                        unsafe {
                            pack_a_tile(
                                a,
                                (m, k),
                                ((task * TASK + b) * BLOCK, kt),
                                (block.as_mut_ptr().cast(), lines_per_row, kt),
                            )
                        };
                    }
                }
            },
        );
        PackedA {
            lines,
            lines_per_row,
        }
    }
}

/// Rows `r0..r0 + 32` × columns `32·kt..32·kt + 32` of `a` `[m, k]` (zero outside it) into line
/// `line` of each of the 32 rows at `out` (rows of `lines_per_row` lines).
///
/// # Safety
/// As [`PackedA::pack`]; `out` must address 32 rows of `lines_per_row > line` writable lines.
#[cfg_attr(
    target_arch = "x86_64",
    target_feature(enable = "avx512f,avx512bw,avx512bf16")
)]
pub(crate) unsafe fn pack_a_tile(
    a: View,
    (m, k): (usize, usize),
    (r0, kt): (usize, usize),
    (out, lines_per_row, line): (*mut Line, usize, usize),
) {
    let rows = BLOCK.min(m - r0);
    let j0 = kt * TILE_K;
    let cols = TILE_K.min(k - j0);
    let write = |i: usize, value: Line| {
        // SAFETY: row `i < 32` of `out` has line `line` (the caller's promise).
        unsafe { out.add(i * lines_per_row + line).write(value) };
    };
    if a.col_stride() == 1 {
        for i in 0..BLOCK {
            let line = if i < rows {
                // SAFETY: `cols` contiguous values of row `r0 + i`; the features (the caller's
                // promise).
                unsafe { simd::round(a.run(r0 + i, j0, cols, false).as_ptr(), cols) }
            } else {
                Line([0; TILE_K])
            };
            write(i, line);
        }
    } else {
        // Transposed (a `View` is row-major or transposed): columns are contiguous. Pair columns
        // 2p and 2p + 1 into words (one per row), then
        // transpose the two 16 × 16 blocks of words, rows 0–15 and 16–31.
        let column = |j: usize| {
            // SAFETY: `rows` contiguous values of column `j0 + j < k` (the caller's promise).
            (j < cols).then(|| unsafe { a.run(r0, j0 + j, rows, true) }.as_ptr())
        };
        let mut halves = [[[0u32; 16]; 16]; 2];
        for p in 0..TILE_ROWS {
            let (even, odd) = (column(2 * p), column(2 * p + 1));
            for (h, half) in halves.iter_mut().enumerate() {
                let at = h * TILE_ROWS;
                let from = |c: Option<*const f32>| c.map(|c| c.wrapping_add(at));
                let len = rows.saturating_sub(at).min(TILE_ROWS);
                // SAFETY: `len` values of each column from row `r0 + at` on; the features (the
                // caller's promise).
                half[p] = simd::as_words(unsafe { simd::pairs(from(even), from(odd), len) });
            }
        }
        for (h, half) in halves.iter_mut().enumerate() {
            // SAFETY: the features (the caller's promise).
            unsafe { simd::transpose16(half) };
            for (i, words) in half.iter().enumerate() {
                write(h * TILE_ROWS + i, simd::from_words(*words));
            }
        }
    }
}

/// The right operand `B` `[k, n]` of products, as bf16 tiles in the pair layout: pack a weight
/// once and multiply by it many times (decoding does).
pub struct PackedB {
    pub(crate) lines: Vec<Line>,
    pub(crate) k: usize,
    pub(crate) n: usize,
    /// Tiles along `k` in each 16-column strip: `round_up(k, 32) / 32`.
    pub(crate) k_tiles: usize,
}

impl PackedB {
    /// `b` `[k, n]` rounded to bf16 and laid out as tiles (on the thread pool when `parallel`).
    ///
    /// # Safety
    /// `b` must address `[k, n]` elements inside a live buffer; the CPU must have AVX-512 F, BW and
    /// BF16 (as every CPU with AMX does: [`crate::Amx::detect`] checks).
    pub unsafe fn pack(b: View, k: usize, n: usize, parallel: bool) -> Self {
        let k_tiles = round_up(k, TILE_K) / TILE_K;
        let strip_lines = k_tiles * TILE_ROWS;
        let strips = round_up(n, BLOCK) / TILE_ROWS;
        let lines = pack_lines(
            strips * strip_lines,
            TASK * strip_lines,
            parallel,
            |task, out| {
                // Along `k` outermost, so that the task's 128 columns are read together.
                let mut strips: Vec<_> = out.chunks_mut(strip_lines).collect();
                for kt in 0..k_tiles {
                    for (s, strip) in strips.iter_mut().enumerate() {
                        let tile = &mut strip[kt * TILE_ROWS..][..TILE_ROWS];
                        // SAFETY: the caller's promise.
                        unsafe {
                            pack_b_tile(
                                b,
                                (k, n),
                                (kt * TILE_K, (task * TASK + s) * TILE_ROWS),
                                tile,
                            )
                        };
                    }
                }
            },
        );
        PackedB {
            lines,
            k,
            n,
            k_tiles,
        }
    }

    /// The rows `k` of the matrix packed.
    pub fn rows(&self) -> usize {
        self.k
    }

    /// The columns `n` of the matrix packed.
    pub fn cols(&self) -> usize {
        self.n
    }
}

/// The tile of `b` `[k, n]` at rows `k0..k0 + 32`, columns `c0..c0 + 16` (zero outside the
/// matrix) into `out`'s 16 lines: line `r` holds, for each column `c`, the pair
/// `B[k0 + 2r][c0 + c], B[k0 + 2r + 1][c0 + c]`.
///
/// # Safety
/// As [`PackedB::pack`].
#[cfg_attr(
    target_arch = "x86_64",
    target_feature(enable = "avx512f,avx512bw,avx512bf16")
)]
pub(crate) unsafe fn pack_b_tile(
    b: View,
    (k, n): (usize, usize),
    (k0, c0): (usize, usize),
    out: &mut [MaybeUninit<Line>],
) {
    let rows = TILE_K.min(k - k0);
    let cols = TILE_ROWS.min(n.saturating_sub(c0));
    if b.col_stride() == 1 {
        let row = |kk: usize| {
            // SAFETY: `cols` contiguous values of row `k0 + kk < k` (the caller's promise).
            (kk < rows && cols > 0).then(|| unsafe { b.run(k0 + kk, c0, cols, false) }.as_ptr())
        };
        for (r, line) in out.iter_mut().enumerate() {
            // SAFETY: `cols` values of each row; the features (the caller's promise).
            line.write(unsafe { simd::pairs(row(2 * r), row(2 * r + 1), cols) });
        }
    } else {
        // Transposed (a `View` is row-major or transposed): columns are contiguous, each one
        // row of 16 pairs (words); transpose them.
        let mut words = [[0u32; 16]; TILE_ROWS];
        for (c, w) in words.iter_mut().enumerate().take(cols) {
            // SAFETY: `rows` contiguous values of column `c0 + c`; the features (the caller's
            // promise).
            *w = simd::as_words(unsafe {
                simd::round(b.run(k0, c0 + c, rows, true).as_ptr(), rows)
            });
        }
        // SAFETY: the features (the caller's promise).
        unsafe { simd::transpose16(&mut words) };
        for (line, w) in out.iter_mut().zip(words) {
            line.write(simd::from_words(w));
        }
    }
}
