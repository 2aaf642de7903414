//! The geometry of the tiles: what one tile row, one tile and one kernel call's block hold.

/// The values of `k` one tile row holds (64 bytes of bf16).
pub(crate) const TILE_K: usize = 32;
/// The rows of a tile, and the columns of an output tile (16 f32 = 64 bytes).
pub(crate) const TILE_ROWS: usize = 16;
/// The rows and columns of the output block one kernel call computes (2 × 2 output tiles).
pub(crate) const BLOCK: usize = 32;

/// 64 bytes of bf16, aligned as the tiles like to load them.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Line(pub(crate) [u16; TILE_K]);
