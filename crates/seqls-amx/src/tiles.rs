//! The AMX instructions, as stable-Rust inline assembly (Rust's AMX intrinsics are unstable,
//! `x86_amx_intrinsics`, rust-lang/rust#126622).
//!
//! Eight tile registers `tmm0`–`tmm7` of 16 rows × 64 bytes each: `tmm0`–`tmm3` accumulate a
//! 32 × 32 block of `C` in f32 (2 × 2 tiles of 16 × 16, loaded from and stored to `C` in place), `tmm4`–`tmm5` hold 32 rows × 32 values of
//! `A`, `tmm6`–`tmm7` 32 values of `k` × 32 columns of `B`. `tdpbf16ps c, a, b` adds to
//! `c[i][j]` the sum over `r < 16` of `a[i][2r]·b[r][2j] + a[i][2r+1]·b[r][2j+1]`, with the
//! products and sums in f32.

use std::arch::asm;

use crate::layout::{Line, TILE_ROWS};

/// The 64-byte operand of `ldtilecfg` (palette 1): bytes per row and rows of each tile.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

/// All eight tiles 16 rows × 64 bytes.
static CONFIG: TileConfig = TileConfig {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    bytes_per_row: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// The tile configuration loaded on this thread while the value lives; released on drop, so
/// that the thread does not carry 8 KiB of tile state through every context switch afterwards.
pub(crate) struct Tiles(());

impl Tiles {
    /// # Safety
    /// The process must have the tile state granted ([`crate::Amx::detect`]).
    pub(crate) unsafe fn load() -> Self {
        // SAFETY: `CONFIG` is a valid palette-1 configuration; the caller's promise for the rest.
        unsafe { asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly)) };
        Tiles(())
    }

    /// The 32 × 32 block `C = C₀ + A·B` over `k_tiles` steps of 32 values of `k`: `C` row-major at
    /// `c`, rows `c_row_bytes` apart; `C₀` read from `init` (its address and row stride in bytes:
    /// `C` itself to accumulate, or stride 0 for one row repeated), zero when `None`.
    ///
    /// # Safety
    /// `a` must point at 32 rows of `k_tiles` lines, `a_row_bytes` apart; `b0` and `b1` at
    /// `k_tiles · 16` lines each; `c` at 32 rows of 32 writable f32, and `init` at 32 readable rows
    /// of 32 f32; `k_tiles ≥ 1`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn block(
        &self,
        a: *const Line,
        a_row_bytes: usize,
        (b0, b1): (*const Line, *const Line),
        k_tiles: usize,
        (c, c_row_bytes): (*mut f32, usize),
        init: Option<(*const f32, usize)>,
    ) {
        debug_assert!(k_tiles >= 1);
        let (init, init_row_bytes) = init.unwrap_or((std::ptr::null(), 0));
        // SAFETY: the caller's promise; every load and store stays inside the operands above.
        unsafe {
            let a16 = (a as *const u8).add(TILE_ROWS * a_row_bytes);
            let c16 = (c as *mut u8).add(TILE_ROWS * c_row_bytes);
            let init16 = (init as *const u8).wrapping_add(TILE_ROWS * init_row_bytes);
            asm!(
                "test {init}, {init}",
                "jz 3f",
                "tileloadd tmm0, [{init} + {init_stride}*1]",
                "tileloadd tmm1, [{init} + {init_stride}*1 + 64]",
                "tileloadd tmm2, [{init16} + {init_stride}*1]",
                "tileloadd tmm3, [{init16} + {init_stride}*1 + 64]",
                "jmp 2f",
                "3:",
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                "2:",
                "tileloadd tmm4, [{a} + {a_stride}*1]",
                "tileloadd tmm5, [{a16} + {a_stride}*1]",
                "tileloadd tmm6, [{b0} + {line}*1]",
                "tileloadd tmm7, [{b1} + {line}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                "add {a}, 64",
                "add {a16}, 64",
                "add {b0}, 1024",
                "add {b1}, 1024",
                "dec {steps}",
                "jnz 2b",
                "tilestored [{c} + {c_stride}*1], tmm0",
                "tilestored [{c} + {c_stride}*1 + 64], tmm1",
                "tilestored [{c16} + {c_stride}*1], tmm2",
                "tilestored [{c16} + {c_stride}*1 + 64], tmm3",
                init = in(reg) init,
                init16 = in(reg) init16,
                init_stride = in(reg) init_row_bytes,
                a = inout(reg) a => _,
                a16 = inout(reg) a16 => _,
                a_stride = in(reg) a_row_bytes,
                b0 = inout(reg) b0 => _,
                b1 = inout(reg) b1 => _,
                line = in(reg) 64usize,
                steps = inout(reg) k_tiles => _,
                c = in(reg) c,
                c16 = in(reg) c16,
                c_stride = in(reg) c_row_bytes,
                options(nostack),
            );
        }
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: a configuration was loaded on this thread by `Tiles::load`.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// Whether the CPU has AMX tiles with bf16 products (CPUID leaf 7, sub-leaf 0: EDX bit 24
/// AMX-TILE, bit 22 AMX-BF16).
pub(crate) fn cpu_has_amx_bf16() -> bool {
    let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
    leaf7.edx & (1 << 24) != 0 && leaf7.edx & (1 << 22) != 0
}

/// Asks Linux for the tile data state (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`),
/// once per process: without it the first tile instruction faults.
pub(crate) fn request_tile_permission() -> Result<(), std::io::Error> {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain system call with integer arguments.
    let status = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    if status == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
