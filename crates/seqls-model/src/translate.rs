//! Translating many sources: length-grouped batches beam-searched on a pool of threads.

use crate::host_decoder::HostDecoder;
use crate::scorer::ModelScorer;
use crate::transformer::Transformer;
use burn::tensor::Device;
use seqls_data::tokenizer::PAD;
use std::borrow::Cow;

/// The special-token ids of the project's tokenizer, for the search.
pub const SPECIAL_TOKENS: seqls_decode::SpecialTokens = seqls_decode::SpecialTokens {
    pad: PAD,
    bos: seqls_data::tokenizer::BOS,
    eos: seqls_data::tokenizer::EOS,
    unk: seqls_data::tokenizer::UNK,
};

/// Beam-searches every source (token ids ending in `</s>`; an empty vector gives no hypotheses),
/// at most `sentences_per_batch` at a time, grouped by length, and returns the n-best lists in input
/// order: [`Translator::translate`] of a translator made for this one call.
pub fn translate(
    model: &Transformer,
    sources: &[Vec<u32>],
    search: &seqls_decode::SearchConfig,
    device: &Device,
    sentences_per_batch: usize,
    threads: usize,
    progress: impl FnMut(usize),
) -> Vec<Vec<seqls_decode::Hypothesis>> {
    Translator::new(model, device).translate(
        sources,
        search,
        sentences_per_batch,
        threads,
        progress,
    )
}

/// A model ready to translate. On the CPU it holds the decoder's weights laid out in host memory
/// (`HostDecoder`), made once (as CTranslate2 converts a model once when it loads it) for every
/// call of [`translate`](Self::translate).
pub struct Translator<'a> {
    model: &'a Transformer,
    host: Option<HostDecoder>,
    device: Device,
}

impl<'a> Translator<'a> {
    pub fn new(model: &'a Transformer, device: &Device) -> Self {
        Translator {
            model,
            host: HostDecoder::for_device(model, device),
            device: device.clone(),
        }
    }

    /// Beam-searches every source (token ids ending in `</s>`; an empty vector gives no
    /// hypotheses), at most `sentences_per_batch` at a time, grouped by length, and returns the
    /// n-best lists in input order. The batches are tasks of a pool of `threads` threads (each batch
    /// is decoded independently, so the output does not depend on the number of threads).
    /// `progress` is called with the number of sentences of each finished batch.
    pub fn translate(
        &self,
        sources: &[Vec<u32>],
        search: &seqls_decode::SearchConfig,
        sentences_per_batch: usize,
        threads: usize,
        mut progress: impl FnMut(usize),
    ) -> Vec<Vec<seqls_decode::Hypothesis>> {
        let (model, device) = (self.model, &self.device);
        let mut order: Vec<usize> = (0..sources.len())
            .filter(|&i| !sources[i].is_empty())
            .collect();
        order.sort_by_key(|&i| sources[i].len());
        let workers = threads.max(1);
        let per_batch = sentences_per_batch
            .min(order.len().div_ceil(workers))
            .max(1);
        let batches: Vec<&[usize]> = order.chunks(per_batch).collect();
        let decode = |batch: &[usize]| {
            let rows: Vec<Vec<u32>> = batch.iter().map(|&i| sources[i].clone()).collect();
            let lens: Vec<usize> = rows.iter().map(|s| s.len() - 1).collect();
            let host = self.host.as_ref().map(Cow::Borrowed);
            let mut scorer = ModelScorer::with_decoder(model, host, &rows, device);
            seqls_decode::beam_search(&mut scorer, &lens, search, SPECIAL_TOKENS)
        };
        let mut out = vec![Vec::new(); sources.len()];
        // The batches run as tasks of a pool of exactly `threads` threads; the products inside a
        // step join the same pool from inside a task, so no more than `threads` threads compete for
        // the cores, and an idle thread helps with a busy one's product. This thread collects the
        // results as they come, for `progress`.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .build()
            // Cannot fail: building a pool fails only when the OS refuses threads; --threads is capped at 1024.
            .expect("decoding thread pool");
        let (tx, rx) = std::sync::mpsc::channel();
        pool.in_place_scope(|scope| {
            for (b, &batch) in batches.iter().enumerate() {
                let (tx, decode) = (tx.clone(), &decode);
                scope.spawn(move |_| {
                    let _ = tx.send((b, decode(batch)));
                });
            }
            drop(tx);
            for (b, nbests) in rx {
                for (&i, nbest) in batches[b].iter().zip(nbests) {
                    out[i] = nbest;
                }
                progress(batches[b].len());
            }
        });
        out
    }
}
