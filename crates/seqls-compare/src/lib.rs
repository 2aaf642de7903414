//! seqls-compare: what changed between two or more systems translating the same test set, in the
//! manner of compare-mt (Neubig et al., NAACL 2019 demo) and with what compare-mt does not know:
//! word confidence and calibration by training frequency, and the search analysis's flags per
//! sentence. No tensors: it reads texts, probabilities and flags.
//!
//! [`compare`] gives a typed [`Comparison`] (`compare.json`); [`page`] writes it, with the sentences,
//! as one self-contained HTML page. The first system is the baseline of every contrast.
//!
//! - [`words`]: word F-measure by training-frequency bucket (compare-mt's numbers) and word
//!   confidence/ECE by the same buckets;
//! - [`sentences`]: BLEU and length ratio by reference length, sentence-BLEU differences, the
//!   sentences that differ most;
//! - [`ngrams`]: the n-grams each system matches more often;
//! - [`bootstrap`]: paired bootstrap intervals of the bucketed differences.

pub mod bootstrap;
pub mod ngrams;
pub mod page;
pub mod probs;
pub mod sentences;
pub mod words;

use bootstrap::{Delta, bucket_deltas};
use ngrams::{SalientNgram, matched_ngrams, salient_ngrams};
use sentences::{LengthBucket, diff_histogram, largest_differences, length_bucket, length_buckets};
use seqls_eval::{BleuOptions, SentenceStats, sentence_bleu, sentence_stats};
use serde::{Deserialize, Serialize};
use words::{BucketCounts, ConfidenceBucket, WordBucket, WordCounts, confidence_buckets};

/// Why a comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{system}: {lines} lines, but the reference has {expected}")]
    Lines {
        system: String,
        lines: usize,
        expected: usize,
    },
    #[error("{system}: word probabilities for {lines} sentences, but the reference has {expected}")]
    ProbabilityLines {
        system: String,
        lines: usize,
        expected: usize,
    },
    #[error("the sources have {lines} lines, but the reference has {expected}")]
    SourceLines { lines: usize, expected: usize },
    #[error("at least two systems are needed, got {0}")]
    TooFewSystems(usize),
    #[error("no sentences to compare")]
    NoSentences,
    #[error(transparent)]
    Eval(#[from] seqls_eval::EvalError),
}

/// What exact search said of one sentence (the search analysis's exact subset).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct SearchFlags {
    /// The output differs from the exact optimum, which scores higher (exact search starts from the
    /// best beam output, so a different optimum is a better one).
    pub search_error: bool,
    /// The exact optimum is the empty translation.
    pub empty_optimum: bool,
}

/// One system's outputs and what is known about them.
#[derive(Debug, Clone)]
pub struct System {
    pub name: String,
    pub outputs: Vec<String>,
    /// Per sentence, the probability of each whitespace word of the output (empty where unknown).
    pub word_probs: Option<Vec<Vec<f64>>>,
    /// Per sentence, the exact-search flags (`None` outside the exact subset).
    pub search: Option<Vec<Option<SearchFlags>>>,
}

/// What is compared.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub sources: Option<Vec<String>>,
    pub references: Vec<String>,
    /// Two or more; the first is the baseline.
    pub systems: Vec<System>,
    /// Word counts of the training targets, for the frequency buckets.
    pub counts: WordCounts,
}

/// How many example sentences and n-grams each contrast lists.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub examples: usize,
    pub ngrams: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            examples: 10,
            ngrams: 15,
        }
    }
}

/// Corpus-level scores of one system.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CorpusScore {
    pub bleu: f64,
    pub length_ratio: f64,
}

/// How often exact search disagreed with one system's outputs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SearchSummary {
    /// Sentences of the exact subset.
    pub sentences: usize,
    pub search_errors: usize,
    pub empty_optima: usize,
}

/// One system against the baseline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Contrast {
    pub system: usize,
    pub baseline: usize,
    /// Per frequency bucket, Δ word F-measure.
    pub f_measure: Vec<Delta>,
    /// Per length bucket, Δ BLEU.
    pub length_bleu: Vec<Delta>,
    /// Sentences per bucket of Δ sentence BLEU ([`sentences::DIFF_LABELS`]).
    pub sentence_bleu_diff: Vec<usize>,
    /// Sentence indices where the system gains most, and where it loses most.
    pub most_improved: Vec<usize>,
    pub most_degraded: Vec<usize>,
    /// The n-grams the system matches more often than the baseline, and those it matches less often.
    pub ngrams_more: Vec<SalientNgram>,
    pub ngrams_fewer: Vec<SalientNgram>,
}

/// Everything [`compare`] found (`compare.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Comparison {
    pub systems: Vec<String>,
    pub sentences: usize,
    pub corpus: Vec<CorpusScore>,
    pub frequency_buckets: Vec<String>,
    /// Reference words per frequency bucket.
    pub reference_words: Vec<u32>,
    /// Per system, per frequency bucket.
    pub word_accuracy: Vec<Vec<WordBucket>>,
    /// Per system (where its word probabilities are known), per frequency bucket.
    pub word_confidence: Vec<Option<Vec<ConfidenceBucket>>>,
    pub length_buckets: Vec<String>,
    /// Per system, per length bucket.
    pub length: Vec<Vec<LengthBucket>>,
    /// Per system, per sentence, sacreBLEU sentence BLEU.
    pub sentence_bleu: Vec<Vec<f64>>,
    /// Per system, where its search analysis is known.
    pub search: Vec<Option<SearchSummary>>,
    /// Every system but the first against the first.
    pub contrasts: Vec<Contrast>,
}

fn check(inputs: &Inputs) -> Result<usize, CompareError> {
    let n = inputs.references.len();
    if n == 0 {
        return Err(CompareError::NoSentences);
    }
    if inputs.systems.len() < 2 {
        return Err(CompareError::TooFewSystems(inputs.systems.len()));
    }
    if let Some(src) = &inputs.sources
        && src.len() != n
    {
        return Err(CompareError::SourceLines {
            lines: src.len(),
            expected: n,
        });
    }
    for s in &inputs.systems {
        if s.outputs.len() != n {
            return Err(CompareError::Lines {
                system: s.name.clone(),
                lines: s.outputs.len(),
                expected: n,
            });
        }
        if let Some(p) = &s.word_probs
            && p.len() != n
        {
            return Err(CompareError::ProbabilityLines {
                system: s.name.clone(),
                lines: p.len(),
                expected: n,
            });
        }
    }
    Ok(n)
}

/// Compares every system of `inputs` with the first.
pub fn compare(inputs: &Inputs, options: Options) -> Result<Comparison, CompareError> {
    let n = check(inputs)?;
    let refs = vec![inputs.references.clone()];
    let stats: Vec<Vec<SentenceStats>> = inputs
        .systems
        .iter()
        .map(|s| sentence_stats(&s.outputs, &refs, &BleuOptions::default()))
        .collect::<Result<_, _>>()?;
    let words: Vec<Vec<BucketCounts>> = inputs
        .systems
        .iter()
        .map(|s| {
            inputs
                .references
                .iter()
                .zip(&s.outputs)
                .map(|(r, o)| BucketCounts::of(&inputs.counts, r, o))
                .collect()
        })
        .collect();
    let lengths: Vec<usize> = inputs
        .references
        .iter()
        .map(|r| length_bucket(r.split_whitespace().count()))
        .collect();
    let sentence_bleu: Vec<Vec<f64>> = stats
        .iter()
        .map(|s| s.iter().map(sentence_bleu).collect())
        .collect();
    let all: Vec<usize> = (0..n).collect();
    let matched: Vec<_> = inputs
        .systems
        .iter()
        .map(|s| matched_ngrams(&inputs.references, &s.outputs))
        .collect();
    let contrasts = (1..inputs.systems.len())
        .map(|s| {
            let pair = [0, s];
            let f_buckets = words::bucket_labels().len();
            let f_measure = bucket_deltas(n, f_buckets, |which, idx| {
                let c = BucketCounts::sum(&words[pair[which]], idx.iter().copied());
                (0..f_buckets).map(|b| c.f_measure(b)).collect()
            });
            let length_bleu = bucket_deltas(n, sentences::length_labels().len(), |which, idx| {
                length_buckets(&stats[pair[which]], &lengths, idx)
                    .iter()
                    .map(|b| b.bleu)
                    .collect()
            });
            let (most_improved, most_degraded) =
                largest_differences(&sentence_bleu[0], &sentence_bleu[s], options.examples);
            let (ngrams_more, ngrams_fewer) =
                salient_ngrams(&matched[0], &matched[s], options.ngrams);
            Contrast {
                system: s,
                baseline: 0,
                f_measure,
                length_bleu,
                sentence_bleu_diff: diff_histogram(&sentence_bleu[0], &sentence_bleu[s]),
                most_improved,
                most_degraded,
                ngrams_more,
                ngrams_fewer,
            }
        })
        .collect();
    let total_words = BucketCounts::sum(&words[0], all.iter().copied());
    Ok(Comparison {
        systems: inputs.systems.iter().map(|s| s.name.clone()).collect(),
        sentences: n,
        corpus: stats
            .iter()
            .map(|s| {
                let (out, reference) = s
                    .iter()
                    .fold((0, 0), |(o, r), x| (o + x.sys_len, r + x.ref_len));
                CorpusScore {
                    bleu: sentences::bleu_of(s, &all),
                    length_ratio: out as f64 / reference.max(1) as f64,
                }
            })
            .collect(),
        frequency_buckets: words::bucket_labels(),
        reference_words: total_words.reference,
        word_accuracy: words
            .iter()
            .map(|w| words::word_buckets(&BucketCounts::sum(w, all.iter().copied())))
            .collect(),
        word_confidence: inputs
            .systems
            .iter()
            .map(|s| {
                s.word_probs
                    .as_ref()
                    .map(|p| confidence_buckets(&inputs.counts, &inputs.references, &s.outputs, p))
            })
            .collect(),
        length_buckets: sentences::length_labels(),
        length: stats
            .iter()
            .map(|s| length_buckets(s, &lengths, &all))
            .collect(),
        sentence_bleu,
        search: inputs
            .systems
            .iter()
            .map(|s| {
                s.search.as_ref().map(|flags| {
                    let known: Vec<&SearchFlags> = flags.iter().flatten().collect();
                    SearchSummary {
                        sentences: known.len(),
                        search_errors: known.iter().filter(|f| f.search_error).count(),
                        empty_optima: known.iter().filter(|f| f.empty_optimum).count(),
                    }
                })
            })
            .collect(),
        contrasts,
    })
}
