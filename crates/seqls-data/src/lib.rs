//! seqls-data: parallel corpora (files, TSV, Multi30k, the embedded synthetic corpus), the joint BPE
//! tokenizer and token-budget batching. No tensors here.

pub mod batch;
pub mod corpus;
pub mod error;
pub mod multi30k;
pub mod read;
pub mod stats;
pub mod synth;
pub mod tokenizer;
pub mod write;

pub use batch::{Batch, Example, make_batch, plan_batches};
pub use corpus::{
    Corpus, DataConfig, EncodedCorpus, encode_for_inference, encode_pairs, encode_source,
    train_tokenizer,
};
pub use error::{DataError, Result};
pub use read::{Pair, ParallelText};
pub use tokenizer::SubwordTokenizer;
