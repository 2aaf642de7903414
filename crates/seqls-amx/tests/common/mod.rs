//! What the AMX tests share.

use seqls_amx::Amx;

/// The tiles, or `None` with a notice on a CPU without them, unless `SEQLS_REQUIRE_AMX=1` (CI's
/// machines have them), which makes their absence a failure.
pub fn amx() -> Option<Amx> {
    match Amx::detect() {
        Ok(amx) => Some(amx),
        Err(why) if std::env::var("SEQLS_REQUIRE_AMX").as_deref() == Ok("1") => {
            panic!("SEQLS_REQUIRE_AMX=1 but {why}")
        }
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}
