//! The output layer of a training step on the tiles, 32 rows at a time: logits, their gradient (by
//! the caller's loss), the states' gradient and the weight gradient's operand, without the
//! `[N, V]` logits or gradient ever leaving the core's cache in f32.
//!
//! With states `H` `[N, d]`, the output matrix `W` `[d, V]` (tied: `W = Eᵀ`) and a loss that turns
//! logits `Z = H·W` into `G = ∂objective/∂Z` row by row, the step needs `Z`, `G`, `∂H = G·Wᵀ` and
//! `∂W = Hᵀ·G` (tied: `∂E = Gᵀ·H`). Computed as three products over whole `[N, V]` buffers, `Z` is
//! written and read in f32, `G` written in f32 and read twice to be packed, and both allocations
//! are fresh memory: a pass over hundreds of megabytes per step against a few milliseconds of tile
//! arithmetic. Here each block of 32 rows is finished while it is in the cache: its logits go to a
//! per-thread scratch, the loss writes its gradient beside them, the gradient is packed once as the
//! left operand of `∂H` (multiplied at once) and once into the bf16 operand of the weight gradient,
//! whose product runs when every block is done. The arithmetic is that of the three products
//! ([`crate::Amx::product_into`]) block for block, so the results are the same bit for bit.

use std::cell::RefCell;

use rayon::prelude::*;

use crate::Amx;
use crate::layout::{BLOCK, Line, TILE_K, TILE_ROWS};
use crate::pack::{PackedA, PackedB, pack_a_tile, pack_b_tile, round_up};
use crate::product::{Initial, Out, blocks};
use crate::view::View;

/// The output matrix packed for one update's output layers: `W` `[d, V]` (the logits' right
/// operand) and `Wᵀ` `[V, d]` (that of the states' gradient).
pub struct PackedOutput {
    w: PackedB,
    w_transposed: PackedB,
    tied: bool,
}

impl PackedOutput {
    /// Packs `W` `[d, V]` given as `weight`: untied, `weight` is `W` row-major; tied, it is `E`
    /// `[V, d]` row-major and `W = Eᵀ`.
    ///
    /// # Safety
    /// `weight` must hold `d·V` values; the CPU must have AVX-512 F, BW and BF16 (as every CPU with
    /// AMX does).
    pub unsafe fn pack(weight: &[f32], d: usize, vocab: usize, tied: bool) -> Self {
        assert_eq!(
            weight.len(),
            d * vocab,
            "the output matrix holds d·V values"
        );
        let (w, w_transposed) = if tied {
            (View::transposed(weight, d), View::rows(weight, d))
        } else {
            (View::rows(weight, vocab), View::transposed(weight, vocab))
        };
        // SAFETY: both views address the `d·V` values of `weight`; the features (the caller's
        // promise).
        unsafe {
            PackedOutput {
                w: PackedB::pack(w, d, vocab, true),
                w_transposed: PackedB::pack(w_transposed, vocab, d, true),
                tied,
            }
        }
    }

    /// The model width `d`.
    pub fn d(&self) -> usize {
        self.w.k
    }

    /// The vocabulary size `V`.
    pub fn vocab(&self) -> usize {
        self.w.n
    }
}

/// One thread's buffers for a block of 32 rows, kept between blocks and calls.
#[derive(Default)]
struct Scratch {
    /// The block's states as the logits' left operand.
    states: PackedA,
    /// Its logits and their gradient, `[32, V]` f32.
    logits: Vec<f32>,
    gradient: Vec<f32>,
    /// The gradient as the left operand of the states' gradient.
    gradient_packed: PackedA,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The weight gradient's bf16 operand, written by the blocks in parallel (each its own lines).
#[derive(Clone, Copy)]
struct SharedLines(*mut Line);

// SAFETY: every block writes lines no other block writes (its rows' k-tile), and the buffer outlives
// the blocks.
unsafe impl Send for SharedLines {}
unsafe impl Sync for SharedLines {}

/// Room in `packed` for 32 rows of `lines_per_row` lines (kept between blocks; every line is
/// written before it is read).
fn make_room(packed: &mut PackedA, lines_per_row: usize) {
    packed
        .lines
        .resize(BLOCK * lines_per_row, Line([0; TILE_K]));
    packed.lines_per_row = lines_per_row;
}

impl Amx {
    /// The output layer of states `states` `[N, d]` (row-major, `N = per_row.len()`) under the
    /// packed output matrix: for each block of up to 32 rows from row `first`,
    /// `loss(first, logits, gradient, per_row)` turns the block's logits (`[rows, V]`, row-major)
    /// into their gradient `G` (written over `gradient`, same shape) and fills `per_row` (the
    /// block's entries of `per_row`); the blocks run on the thread pool. Writes `∂H = G·Wᵀ` into
    /// `states_gradient` (`[N, d]`) and returns the weight gradient: `Hᵀ·G` `[d, V]`, or, tied,
    /// `Gᵀ·H` `[V, d]`. Every product's operands are rounded to bf16 as in
    /// [`Amx::product_into`], whose results these are bit for bit.
    pub fn output_layer<T: Send>(
        &self,
        output: &PackedOutput,
        states: &[f32],
        per_row: &mut [T],
        loss: impl Fn(usize, &[f32], &mut [f32], &mut [T]) + Sync,
        states_gradient: &mut [f32],
    ) -> Vec<f32> {
        let (d, vocab, n) = (output.d(), output.vocab(), per_row.len());
        assert_eq!(states.len(), n * d, "states are [N, d]");
        assert_eq!(
            states_gradient.len(),
            n * d,
            "the states' gradient is [N, d]"
        );
        if n == 0 {
            return vec![0f32; d * vocab];
        }
        let row_blocks = n.div_ceil(BLOCK);
        // `G` in bf16 as the weight gradient's operand: untied the right operand `[N, V]` (the
        // block of rows `32·b..` is k-tile `b` of every 16-column strip), tied the left operand
        // `Gᵀ` `[V, N]` (that block is line `b` of every row).
        let strip_lines = row_blocks * TILE_ROWS;
        let len = if output.tied {
            round_up(vocab, BLOCK) * row_blocks
        } else {
            round_up(vocab, BLOCK) / TILE_ROWS * strip_lines
        };
        let mut g_lines: Vec<Line> = Vec::with_capacity(len);
        let shared = SharedLines(g_lines.as_mut_ptr());
        let states_out = Out {
            ptr: states_gradient.as_mut_ptr(),
            row_stride: d,
        };
        let states_view = View::rows(states, d);
        per_row
            .par_chunks_mut(BLOCK)
            .enumerate()
            .for_each(|(b, block_values)| {
                let first = b * BLOCK;
                SCRATCH.with_borrow_mut(|scratch| {
                    // SAFETY: `Amx` proves the tile state and features; every pointer below
                    // stays inside the buffers sized here or by the caller's asserted shapes, and
                    // each block writes only its own rows of `states_gradient` and its own lines
                    // of `g_lines`.
                    unsafe {
                        self.output_block(
                            output,
                            (states_view, n),
                            first,
                            block_values,
                            &loss,
                            scratch,
                            states_out,
                            (shared, row_blocks),
                        )
                    }
                });
            });
        // SAFETY: every block wrote its lines, and the blocks cover `0..row_blocks`: untied, each
        // strip's k-tiles; tied, line `b` of every row.
        unsafe { g_lines.set_len(len) };
        // Written whole by the product below (which does not read it), so not zero-filled first.
        let mut weight_gradient: Vec<f32> = Vec::with_capacity(d * vocab);
        let out = Out {
            ptr: weight_gradient.as_mut_ptr(),
            row_stride: if output.tied { d } else { vocab },
        };
        // SAFETY: the packed operands hold the shapes named; `weight_gradient` has room for the
        // output, every element of which the product writes (`n ≥ 1`, so `k ≥ 1`).
        unsafe {
            if output.tied {
                let g_transposed = PackedA {
                    lines: g_lines,
                    lines_per_row: row_blocks,
                };
                let h = PackedB::pack(states_view, n, d, true);
                self.packed_operands_product_into(
                    vocab,
                    out,
                    Initial::Zero,
                    &g_transposed,
                    &h,
                    true,
                );
            } else {
                let g = PackedB {
                    lines: g_lines,
                    k: n,
                    n: vocab,
                    k_tiles: row_blocks,
                };
                let h_transposed = View::transposed(states, d);
                self.packed_product_into(
                    d,
                    (out.ptr, out.row_stride),
                    Initial::Zero,
                    h_transposed,
                    &g,
                    true,
                );
            }
            weight_gradient.set_len(d * vocab);
        }
        weight_gradient
    }

    /// One block of up to 32 rows from `first` of [`Amx::output_layer`].
    ///
    /// # Safety
    /// The tile state must be granted; `states` must be `[n, d]`; `states_out` `[n, d]`; `g_lines`
    /// sized as in [`Amx::output_layer`].
    #[allow(clippy::too_many_arguments)]
    unsafe fn output_block<T>(
        &self,
        output: &PackedOutput,
        (states, n): (View, usize),
        first: usize,
        values: &mut [T],
        loss: &(impl Fn(usize, &[f32], &mut [f32], &mut [T]) + Sync),
        scratch: &mut Scratch,
        states_out: Out,
        (g_lines, row_blocks): (SharedLines, usize),
    ) {
        let (d, vocab) = (output.d(), output.vocab());
        let rows = values.len();
        let (d_tiles, v_tiles) = (output.w.k_tiles, output.w_transposed.k_tiles);
        make_room(&mut scratch.states, d_tiles);
        make_room(&mut scratch.gradient_packed, v_tiles);
        scratch.logits.resize(BLOCK * vocab, 0.0);
        scratch.gradient.resize(BLOCK * vocab, 0.0);
        // SAFETY (the whole block): the caller's promise; each packing writes lines inside the
        // buffers resized just above, and `blocks` reads and writes inside them and the outputs.
        unsafe {
            for kt in 0..d_tiles {
                let at = (scratch.states.lines.as_mut_ptr(), d_tiles, kt);
                pack_a_tile(states, (n, d), (first, kt), at);
            }
            let logits = Out {
                ptr: scratch.logits.as_mut_ptr(),
                row_stride: vocab,
            };
            let column_blocks = vocab.div_ceil(BLOCK);
            blocks(
                &scratch.states,
                &output.w,
                0..1,
                0..column_blocks,
                (rows, vocab),
                logits,
                Initial::Zero,
            );

            let (z, g) = (
                &scratch.logits[..rows * vocab],
                &mut scratch.gradient[..rows * vocab],
            );
            loss(first, z, g, values);

            let g = View::rows(&scratch.gradient[..rows * vocab], vocab);
            for kt in 0..v_tiles {
                let at = (scratch.gradient_packed.lines.as_mut_ptr(), v_tiles, kt);
                pack_a_tile(g, (rows, vocab), (0, kt), at);
            }
            let block_out = Out {
                ptr: states_out.ptr.add(first * d),
                row_stride: d,
            };
            let d_blocks = d.div_ceil(BLOCK);
            blocks(
                &scratch.gradient_packed,
                &output.w_transposed,
                0..1,
                0..d_blocks,
                (rows, d),
                block_out,
                Initial::Zero,
            );

            let b = first / BLOCK;
            if output.tied {
                let g_transposed = View::transposed(&scratch.gradient[..rows * vocab], vocab);
                for vb in 0..vocab.div_ceil(BLOCK) {
                    let at = (g_lines.0.add(vb * BLOCK * row_blocks), row_blocks, b);
                    pack_a_tile(g_transposed, (vocab, rows), (vb * BLOCK, 0), at);
                }
            } else {
                let strip_lines = row_blocks * TILE_ROWS;
                for s in 0..vocab.div_ceil(BLOCK) * 2 {
                    let tile = g_lines.0.add(s * strip_lines + b * TILE_ROWS);
                    let tile = std::slice::from_raw_parts_mut(tile.cast(), TILE_ROWS);
                    pack_b_tile(g, (rows, vocab), (0, s * TILE_ROWS), tile);
                }
            }
        }
    }
}
