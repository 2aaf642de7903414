//! The number format of the matrix products, chosen once per process: every product of training
//! and decoding goes through [`host_ops::product_into`](super::host_ops) or the host decoder's
//! packed weights, which ask [`amx`] whether to run on the AMX tiles.
//!
//! Mixed precision as PyTorch's autocast and oneDNN do it: with [`Precision::Bf16`] the operands of
//! every matrix product are rounded to bfloat16 (8 mantissa bits) as they are packed and multiplied
//! on the tiles, accumulating in f32; parameters, Adam state, the loss, softmax, layer norm and all
//! other arithmetic stay f32. [`Precision::F32`] runs the `gemm` crate's f32 kernels, bit-identical
//! to before bf16 existed.

use std::sync::atomic::{AtomicBool, Ordering};

use seqls_amx::{Amx, Unavailable};
use serde::{Deserialize, Serialize};

/// The number format of the matrix products' operands (`--precision`, `train.precision`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 operands and accumulation.
    #[default]
    F32,
    /// bf16 operands, f32 accumulation, on AMX tiles (f32 where the CPU has none).
    Bf16,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        })
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!(
                "unknown precision `{other}`: expected `f32` or `bf16`"
            )),
        }
    }
}

/// What runs the products after [`use_precision`].
#[derive(Debug, Clone)]
pub enum ProductEngine {
    /// f32, the `gemm` crate's kernels.
    F32,
    /// bf16 operands on the AMX tiles, f32 accumulation.
    AmxBf16,
    /// bf16 was asked for, but the tiles are unavailable: f32 runs instead.
    F32Fallback(Unavailable),
}

impl std::fmt::Display for ProductEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProductEngine::F32 => write!(f, "matrix products in f32 (gemm crate)"),
            ProductEngine::AmxBf16 => {
                write!(
                    f,
                    "matrix products in bf16 on AMX tiles, accumulating in f32"
                )
            }
            ProductEngine::F32Fallback(why) => write!(
                f,
                "matrix products in f32 (gemm crate): bf16 was asked for, but {why}"
            ),
        }
    }
}

/// Whether the products run on the AMX tiles (set by [`use_precision`]).
static ON_TILES: AtomicBool = AtomicBool::new(false);

/// Makes every later product of this process run in `precision` (bf16 on the AMX tiles when the
/// CPU has them and `SEQLS_AMX` is not `off`, else f32) and says which engine that is. Call it
/// before the model is built: the host decoder packs its weights for the engine in use then.
pub fn use_precision(precision: Precision) -> ProductEngine {
    let engine = match precision {
        Precision::F32 => ProductEngine::F32,
        Precision::Bf16 => match Amx::detect() {
            Ok(_) => ProductEngine::AmxBf16,
            Err(why) => ProductEngine::F32Fallback(why),
        },
    };
    ON_TILES.store(matches!(engine, ProductEngine::AmxBf16), Ordering::Relaxed);
    engine
}

/// The products in a precision until dropped, then back to what ran before (a training inside a
/// longer process, e.g. a sweep, leaves its decoding as it found it).
pub struct PrecisionScope {
    on_tiles_before: bool,
    /// What runs the products meanwhile.
    pub engine: ProductEngine,
}

impl PrecisionScope {
    pub fn enter(precision: Precision) -> Self {
        let on_tiles_before = ON_TILES.load(Ordering::Relaxed);
        PrecisionScope {
            on_tiles_before,
            engine: use_precision(precision),
        }
    }
}

impl Drop for PrecisionScope {
    fn drop(&mut self) {
        ON_TILES.store(self.on_tiles_before, Ordering::Relaxed);
    }
}

/// The tiles, when the products are to run on them.
pub(crate) fn amx() -> Option<Amx> {
    if ON_TILES.load(Ordering::Relaxed) {
        Amx::detect().ok()
    } else {
        None
    }
}
