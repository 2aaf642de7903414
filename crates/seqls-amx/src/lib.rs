//! bf16 matrix products on Intel AMX tiles, accumulating in f32: `C (+)= bf16(A)·bf16(B)`, where
//! `bf16(x)` rounds each f32 operand to the nearest bfloat16 (ties to even) as it is packed, and
//! the products and their sums are f32.
//!
//! Written by hand because no well-kept Rust library does it: the `gemm` crate (0.19) has no bf16
//! (its f16 path widens to f32), burn-flex's bf16 product widens to f32 too, candle's AMX path is
//! int8 only, and Rust's AMX intrinsics are unstable. oneDNN would do it, through FFI; it was not
//! chosen because it brings a C++/cmake build into every `cargo build` and a thread pool of its
//! own beside rayon's, which the products here share with the rest of seqls. What is written here
//! is small: rounding, two packing layouts, and one 32 × 32 kernel (`tiles.rs`, inline `asm!`);
//! besides the products, training's output layer taken 32 rows at a time (`output_layer.rs`), which
//! no library offers with the caller's loss inside it.
//!
//! [`Amx::detect`] says once per process whether the tiles can be used: the CPU must have them
//! (CPUID) and Linux must grant their state (`arch_prctl`); `SEQLS_AMX=off` turns them off, so
//! that callers fall back to their f32 path.

mod bf16;
mod layout;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod output_layer;
mod pack;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod product;
mod simd;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod tiles;
mod view;

use std::sync::OnceLock;

pub use bf16::{from_bf16, to_bf16};
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub use output_layer::PackedOutput;
pub use pack::PackedB;
pub use product::Initial;
pub use view::View;

/// Why the tiles cannot be used in this process.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unavailable {
    #[error("AMX needs an x86-64 CPU under Linux")]
    NotX86Linux,
    #[error(
        "this CPU has no AMX bf16 tiles (CPUID: amx_tile, amx_bf16, with avx512f, avx512bw, avx512_bf16)"
    )]
    NoTiles,
    #[error("Linux refused the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM): {0}")]
    Refused(String),
    #[error("turned off by SEQLS_AMX={0}")]
    TurnedOff(String),
}

/// Proof that this process may use the tiles; the products are its methods.
#[derive(Debug, Clone, Copy)]
pub struct Amx(());

impl Amx {
    /// The tiles, if this CPU has them, Linux grants them, and `SEQLS_AMX` is not `off` (or `0`);
    /// decided once per process.
    pub fn detect() -> Result<Amx, Unavailable> {
        static DETECTED: OnceLock<Result<Amx, Unavailable>> = OnceLock::new();
        DETECTED.get_or_init(detect_now).clone()
    }
}

fn detect_now() -> Result<Amx, Unavailable> {
    if let Ok(value) = std::env::var("SEQLS_AMX")
        && matches!(value.as_str(), "off" | "0")
    {
        return Err(Unavailable::TurnedOff(value));
    }
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        let avx512 = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512bf16");
        if !tiles::cpu_has_amx_bf16() || !avx512 {
            return Err(Unavailable::NoTiles);
        }
        tiles::request_tile_permission().map_err(|e| Unavailable::Refused(e.to_string()))?;
        Ok(Amx(()))
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    Err(Unavailable::NotX86Linux)
}
