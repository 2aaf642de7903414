//! Decoding with the model: the [`scorer::ModelScorer`] that the burn-free search of `seqls-decode`
//! drives, the CPU's hand-written decoder step and its key/value cache, translating many sources on a
//! pool of threads, and what `seqls decode` writes.

pub(crate) mod host_cache;
pub(crate) mod host_decoder;
pub mod output;
pub mod scorer;
pub mod translate;
