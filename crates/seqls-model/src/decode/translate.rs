//! Translating many sources: length-grouped batches beam-searched (or exactly searched) on a pool of threads.

use crate::decode::host_decoder::HostDecoder;
use crate::decode::scorer::ModelScorer;
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

/// The most hypotheses (rows) one batch of a beam search holds per step: a batch takes at most
/// `512 / beam size` sentences, however many `--batch-size` allows (64 by default, so beams up to 8
/// are batched as asked). At large beams, batches of many sentences step through `[rows, vocab]`
/// log-probabilities of 100 MB (64 × 64 rows of 6,000 words) and leave one thread alone with the last
/// large batch. Measured on the converged De→En model, beam 64, 200 sentences, 2 threads,
/// `--early-stop`: 64 sentences a batch 39.4 / 35.5 sentences/s, 16: 50.1, 8: 50.4 / 52.6, 4: 52.2;
/// beam 16: 64 sentences 158–168, 32: 172–203, 16: 201–204. The translations were the same.
const MAX_BATCH_HYPOTHESES: usize = 512;

/// Sentences per batch for a beam search of `beam_size` when `requested` are allowed.
fn batch_sentences(requested: usize, beam_size: usize) -> usize {
    requested
        .min(MAX_BATCH_HYPOTHESES / beam_size.max(1))
        .max(1)
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
    /// hypotheses), at most `sentences_per_batch` at a time (and at most [`MAX_BATCH_HYPOTHESES`]
    /// hypotheses), grouped by length, and returns the
    /// n-best lists in input order. The batches are tasks of a pool of `threads` threads (each batch
    /// is decoded independently, so the output does not depend on the number of threads).
    /// `progress` is called with the number of sentences of each finished batch.
    pub fn translate(
        &self,
        sources: &[Vec<u32>],
        search: &seqls_decode::SearchConfig,
        sentences_per_batch: usize,
        threads: usize,
        progress: impl FnMut(usize),
    ) -> Vec<Vec<seqls_decode::Hypothesis>> {
        self.in_batches(
            sources,
            batch_sentences(sentences_per_batch, search.beam_size),
            threads,
            progress,
            |_, rows, lens| {
                let mut scorer = self.scorer(rows);
                seqls_decode::beam_search(&mut scorer, lens, search, SPECIAL_TOKENS)
            },
        )
    }

    /// One beam search per source that answers for several rankings
    /// ([`seqls_decode::beam_search_rankings`]): per source, the best hypothesis under each ranking
    /// (empty for an empty source). Batched as [`translate`](Self::translate).
    pub fn translate_rankings(
        &self,
        sources: &[Vec<u32>],
        search: &seqls_decode::SearchConfig,
        rankings: &[seqls_decode::LengthPenalty],
        sentences_per_batch: usize,
        threads: usize,
        progress: impl FnMut(usize),
    ) -> Vec<Vec<seqls_decode::Hypothesis>> {
        self.in_batches(
            sources,
            batch_sentences(sentences_per_batch, search.beam_size),
            threads,
            progress,
            |_, rows, lens| {
                let mut scorer = self.scorer(rows);
                seqls_decode::beam_search_rankings(
                    &mut scorer,
                    lens,
                    search,
                    rankings,
                    SPECIAL_TOKENS,
                )
            },
        )
    }

    /// Exact search ([`seqls_decode::exact_search`]) for every source, batched as
    /// [`translate`](Self::translate) (an empty source gives `None`). Each sentence's search starts
    /// from the best unnormalised score among the finished hypotheses of a beam search with `search`
    /// (its beam size and ranking; n-best = beam size) under the same length limits, the minimum
    /// length of `exact.min_len_ratio` included, and `known[i]` when given and long enough (e.g. the
    /// best output of other beam searches).
    #[allow(clippy::too_many_arguments)]
    pub fn exact(
        &self,
        sources: &[Vec<u32>],
        search: &seqls_decode::SearchConfig,
        exact: &seqls_decode::ExactConfig,
        known: Option<&[Option<seqls_decode::Hypothesis>]>,
        sentences_per_batch: usize,
        threads: usize,
        progress: impl FnMut(usize),
    ) -> Vec<Option<seqls_decode::ExactResult>> {
        self.in_batches(
            sources,
            sentences_per_batch,
            threads,
            progress,
            |batch, rows, lens| {
                let mut starts = self.exact_starts(rows, lens, search, exact);
                if let Some(known) = known {
                    for (k, (&i, &n)) in batch.iter().zip(lens).enumerate() {
                        let min_len = exact.min_len(search, n);
                        let candidate = known[i].as_ref().filter(|h| h.tokens.len() > min_len);
                        if let Some(h) = candidate
                            && starts[k].as_ref().is_none_or(|s| h.score > s.score)
                        {
                            starts[k] = Some(h.clone());
                        }
                    }
                }
                let mut scorer = self.scorer(rows);
                seqls_decode::exact_search(&mut scorer, lens, search, exact, starts, SPECIAL_TOKENS)
                    .into_iter()
                    .map(Some)
                    .collect()
            },
        )
    }

    /// The starting translation of each source of a batch for [`exact`](Self::exact): the finished
    /// beam hypothesis with the highest unnormalised score, searched under each source's own
    /// minimum length (sources with the same minimum length share a beam search).
    fn exact_starts(
        &self,
        rows: &[Vec<u32>],
        lens: &[usize],
        search: &seqls_decode::SearchConfig,
        exact: &seqls_decode::ExactConfig,
    ) -> Vec<Option<seqls_decode::Hypothesis>> {
        let min_lens: Vec<usize> = lens.iter().map(|&n| exact.min_len(search, n)).collect();
        let mut starts = vec![None; rows.len()];
        let mut groups = min_lens.clone();
        groups.sort_unstable();
        groups.dedup();
        for min_len in groups {
            let members: Vec<usize> = (0..rows.len())
                .filter(|&i| min_lens[i] == min_len)
                .collect();
            let group_rows: Vec<Vec<u32>> = members.iter().map(|&i| rows[i].clone()).collect();
            let group_lens: Vec<usize> = members.iter().map(|&i| lens[i]).collect();
            let beam = seqls_decode::SearchConfig {
                min_len,
                nbest: search.beam_size,
                ..search.clone()
            };
            let mut scorer = self.scorer(&group_rows);
            let nbests = seqls_decode::beam_search(&mut scorer, &group_lens, &beam, SPECIAL_TOKENS);
            for (&i, nbest) in members.iter().zip(nbests) {
                starts[i] = nbest.into_iter().max_by(|a, b| a.score.total_cmp(&b.score));
            }
        }
        starts
    }

    /// A scorer over `rows` (sources ending in `</s>`), with this translator's CPU decoder.
    fn scorer(&self, rows: &[Vec<u32>]) -> ModelScorer<'_> {
        let host = self.host.as_ref().map(Cow::Borrowed);
        ModelScorer::with_decoder(self.model, host, rows, &self.device)
    }

    /// Runs `decode(input indices, sources, source lengths without </s>)` on length-grouped batches
    /// of the non-empty sources, at most `sentences_per_batch` at a time, as tasks of a pool of `threads`
    /// threads, and returns one result per source in input order (the default for empty sources).
    fn in_batches<T: Default + Clone + Send>(
        &self,
        sources: &[Vec<u32>],
        sentences_per_batch: usize,
        threads: usize,
        mut progress: impl FnMut(usize),
        decode: impl Fn(&[usize], &[Vec<u32>], &[usize]) -> Vec<T> + Sync,
    ) -> Vec<T> {
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
            decode(batch, &rows, &lens)
        };
        let mut out = vec![T::default(); sources.len()];
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
            for (b, results) in rx {
                for (&i, result) in batches[b].iter().zip(results) {
                    out[i] = result;
                }
                progress(batches[b].len());
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::batch_sentences;

    #[test]
    fn a_batch_holds_at_most_512_hypotheses_and_at_least_one_sentence() {
        assert_eq!(batch_sentences(64, 1), 64);
        assert_eq!(batch_sentences(64, 8), 64);
        assert_eq!(batch_sentences(64, 16), 32);
        assert_eq!(batch_sentences(64, 64), 8);
        assert_eq!(batch_sentences(3, 64), 3);
        assert_eq!(batch_sentences(64, 1000), 1);
    }
}
