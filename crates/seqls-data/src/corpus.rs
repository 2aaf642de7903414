//! Which corpus an experiment uses (`[data]` in the TOML config), and loading its splits as text or as
//! tokenised [`Example`]s.

use crate::batch::Example;
use crate::error::{DataError, Result};
use crate::multi30k::{self, LanguagePair};
use crate::read::{Pair, ParallelText, ReadStats, read_parallel, read_tsv};
use crate::synth;
use crate::tokenizer::{EOS, SubwordTokenizer};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which corpus a config reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Corpus {
    /// The project's synthetic corpus, generated from `synth_pairs` and `synth_seed` (with its oracle).
    #[default]
    Synth,
    /// Multi30k task 1 from `data_dir` (or `$SEQLS_DATA_DIR`), language pair `pair`.
    Multi30k,
    /// Parallel text files named by `train`, `val` and `test`.
    Files,
}

impl std::fmt::Display for Corpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Corpus::Synth => "synth",
            Corpus::Multi30k => "multi30k",
            Corpus::Files => "files",
        })
    }
}

/// `[data]`: the corpus, the tokenizer and the batch budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// `synth` (embedded, generated), `multi30k` (needs `data_dir`), or `files` (paths below).
    pub corpus: Corpus,
    /// Language pair for `multi30k`, source-target, e.g. `de-en`.
    pub pair: String,
    /// Directory of the Multi30k `.gz` files; the `SEQLS_DATA_DIR` environment variable when unset.
    pub data_dir: Option<PathBuf>,
    /// Training pairs of the synthetic corpus (validation and test get max(pairs/20, 50) each).
    pub synth_pairs: usize,
    /// Seed of the synthetic corpus.
    pub synth_seed: u64,
    /// For `files`: per split either `[source, target]` file paths or one TSV path. For `synth` and
    /// `multi30k`, a non-empty `train` replaces the training split only (e.g. a teacher's translations
    /// of the training sources for sequence-level distillation, written by `seqls distill-data`).
    pub train: Vec<PathBuf>,
    pub val: Vec<PathBuf>,
    pub test: Vec<PathBuf>,
    /// BPE vocabulary size, special tokens included.
    pub vocab_size: usize,
    /// Pairs with more subword tokens than this on either side are dropped from training.
    pub max_len: usize,
    /// Batch budget in padded tokens (fairseq `--max-tokens`).
    pub max_tokens: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            corpus: Corpus::Synth,
            pair: "de-en".into(),
            data_dir: None,
            synth_pairs: 20_000,
            synth_seed: 1,
            train: vec![],
            val: vec![],
            test: vec![],
            vocab_size: 8000,
            max_len: 100,
            max_tokens: 4096,
        }
    }
}

/// The environment variable naming the Multi30k directory.
pub use crate::multi30k::DATA_DIR_ENV;

impl DataConfig {
    /// Checks values that would otherwise fail later.
    pub fn validate(&self) -> Result<()> {
        if self.corpus == Corpus::Synth && self.synth_pairs == 0 {
            return Err(DataError::OutOfRange {
                key: "data.synth_pairs",
                low: 1,
                high: 10_000_000,
                value: 0,
            });
        }
        if self.corpus == Corpus::Multi30k {
            self.pair.parse::<LanguagePair>()?;
        }
        if self.corpus != Corpus::Files && self.train.len() > 2 {
            return Err(DataError::FileList {
                key: "train",
                allowed: "empty, [source, target] or [tsv]",
            });
        }
        if self.corpus == Corpus::Files {
            for (name, paths) in [("train", &self.train), ("val", &self.val)] {
                if !(1..=2).contains(&paths.len()) {
                    return Err(DataError::FileList {
                        key: name,
                        allowed: "[source, target] or [tsv] for corpus \"files\"",
                    });
                }
            }
        }
        if self.max_tokens < self.max_len + 1 {
            return Err(DataError::MaxTokens {
                max_tokens: self.max_tokens,
                max_len: self.max_len,
            });
        }
        for (key, value, low, high) in [
            ("data.vocab_size", self.vocab_size, 8, 1 << 20),
            ("data.max_len", self.max_len, 1, 1 << 16),
            ("data.max_tokens", self.max_tokens, 2, 1 << 24),
            ("data.synth_pairs", self.synth_pairs, 1, 10_000_000),
        ] {
            if !(low..=high).contains(&value) {
                return Err(DataError::OutOfRange {
                    key,
                    low,
                    high,
                    value,
                });
            }
        }
        Ok(())
    }

    /// The Multi30k directory: `data_dir`, else `$SEQLS_DATA_DIR`.
    pub fn multi30k_dir(&self) -> Result<PathBuf> {
        self.data_dir
            .clone()
            .or_else(|| std::env::var_os(DATA_DIR_ENV).map(PathBuf::from))
            .ok_or(DataError::NoDataDir(DATA_DIR_ENV))
    }

    /// Short name of the corpus for run names: `synth`, `multi30k-de-en`, `files`.
    pub fn name(&self) -> String {
        match self.corpus {
            Corpus::Multi30k => format!("multi30k-{}", self.pair),
            other => other.to_string(),
        }
    }

    /// The name a split has in this corpus, which files and reports use: `train`, `val` (also
    /// `valid`, `dev`) or `test` for the synthetic and file corpora; for Multi30k `train`, `val` or a
    /// test set present in the data directory (`test` names [`multi30k::DEFAULT_TEST`]). An unknown
    /// split is an error that lists the available ones.
    pub fn resolve_split(&self, split: &str) -> Result<String> {
        let name = self.split_name(split)?;
        if self.corpus == Corpus::Multi30k {
            multi30k::check_split(&self.multi30k_dir()?, &self.pair.parse()?, &name)?;
        }
        Ok(name)
    }

    /// [`DataConfig::resolve_split`] without looking at the data: for reading results that name
    /// their split, where the corpus need not be present. Any Multi30k name is taken as it is.
    pub fn split_name(&self, split: &str) -> Result<String> {
        let basic = match split {
            "train" => Some("train"),
            "val" | "valid" | "dev" => Some("val"),
            "test" => Some("test"),
            _ => None,
        };
        match (self.corpus, basic) {
            (Corpus::Multi30k, Some("test")) => Ok(multi30k::DEFAULT_TEST.to_string()),
            (Corpus::Multi30k, None) => Ok(split.to_string()),
            (_, Some(b)) => Ok(b.to_string()),
            (corpus, None) => Err(DataError::UnknownSplit {
                split: split.to_string(),
                corpus: corpus.to_string(),
            }),
        }
    }

    /// Reads one split (any name [`DataConfig::resolve_split`] accepts).
    pub fn load_split(&self, split: &str) -> Result<ParallelText> {
        let split = self.resolve_split(split)?;
        let split = split.as_str();
        if split == "train" && self.corpus != Corpus::Files {
            match self.train.as_slice() {
                [tsv] => return read_tsv(tsv),
                [src, tgt] => return read_parallel(src, tgt),
                _ => {}
            }
        }
        match self.corpus {
            Corpus::Synth => {
                let pairs: Vec<Pair> = self
                    .synth_split(split)
                    .into_iter()
                    .map(|p| Pair {
                        src: p.src,
                        tgt: p.tgt,
                    })
                    .collect();
                let stats = ReadStats {
                    lines: pairs.len(),
                    skipped_empty: 0,
                };
                Ok(ParallelText { pairs, stats })
            }
            Corpus::Multi30k => {
                multi30k::read_split(&self.multi30k_dir()?, &self.pair.parse()?, split)
            }
            Corpus::Files => {
                let paths = match split {
                    "train" => &self.train,
                    "val" => &self.val,
                    _ => &self.test,
                };
                match paths.as_slice() {
                    [tsv] => read_tsv(tsv),
                    [src, tgt] => read_parallel(src, tgt),
                    _ => Err(DataError::SplitNotSet(split.to_string())),
                }
            }
        }
    }

    /// The synthetic split with its oracle (only for `corpus = "synth"`).
    pub fn synth_split(&self, split: &str) -> Vec<synth::SynthPair> {
        let [train, val, test] = synth::generate_splits(self.synth_pairs, self.synth_seed);
        match split {
            "train" => train.1,
            "val" => val.1,
            _ => test.1,
        }
    }
}

/// Tokenised pairs plus how many were dropped for length.
#[derive(Debug, Clone, Default)]
pub struct EncodedCorpus {
    pub examples: Vec<Example>,
    /// Pairs dropped because a side has more than `max_len` tokens.
    pub filtered_long: usize,
}

/// Tokenises `pairs` for training; the source gets a final `</s>`. Pairs whose source or target has
/// more than `max_len` subword tokens are dropped and counted.
pub fn encode_pairs(
    tokenizer: &SubwordTokenizer,
    pairs: &[Pair],
    max_len: usize,
) -> Result<EncodedCorpus> {
    let mut out = EncodedCorpus::default();
    for (index, pair) in pairs.iter().enumerate() {
        let mut src = tokenizer.encode(&pair.src)?;
        let tgt = tokenizer.encode(&pair.tgt)?;
        if src.len() > max_len || tgt.len() > max_len {
            out.filtered_long += 1;
            continue;
        }
        src.push(EOS);
        out.examples.push(Example { index, src, tgt });
    }
    Ok(out)
}

/// The source a model with `model.max_len = model_max_len` positions reads at inference (decode,
/// score, evaluation, search analysis, distillation data): the sentence's subword ids cut to the first
/// `model_max_len − 2`, then `</s>`, so that it never needs more than `model_max_len − 1` positions.
/// The one rule every command uses; nothing is dropped.
pub fn encode_source(
    tokenizer: &SubwordTokenizer,
    sentence: &str,
    model_max_len: usize,
) -> Result<Vec<u32>> {
    let mut ids = tokenizer.encode(sentence)?;
    ids.truncate(model_max_len.saturating_sub(2));
    ids.push(EOS);
    Ok(ids)
}

/// Tokenises `pairs` for inference: every pair, its source by [`encode_source`], its target whole.
pub fn encode_for_inference(
    tokenizer: &SubwordTokenizer,
    pairs: &[Pair],
    model_max_len: usize,
) -> Result<EncodedCorpus> {
    let mut out = EncodedCorpus::default();
    for (index, pair) in pairs.iter().enumerate() {
        let src = encode_source(tokenizer, &pair.src, model_max_len)?;
        let tgt = tokenizer.encode(&pair.tgt)?;
        out.examples.push(Example { index, src, tgt });
    }
    Ok(out)
}

/// Trains the joint tokenizer on the training pairs (source and target sentences together).
pub fn train_tokenizer(pairs: &[Pair], vocab_size: usize) -> Result<SubwordTokenizer> {
    SubwordTokenizer::train(
        pairs.iter().flat_map(|p| [p.src.as_str(), p.tgt.as_str()]),
        vocab_size,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::EOS;

    fn pair(src: &str, tgt: &str) -> Pair {
        Pair {
            src: src.into(),
            tgt: tgt.into(),
        }
    }

    /// One rule for a source at inference: cut to `model_max_len − 2` ids, then `</s>`; the same from
    /// `encode_source` (decode, score) and `encode_for_inference` (eval, search analysis,
    /// distillation data), and nothing dropped; training drops instead.
    #[test]
    fn a_long_source_is_cut_the_same_way_everywhere_at_inference_and_dropped_in_training() {
        let long = "a b c d e f g h i j k l m n o p";
        let pairs = vec![pair(long, "x y"), pair("a b", "x")];
        let tokenizer = train_tokenizer(&pairs, 64).unwrap();
        let full = tokenizer.encode(long).unwrap();
        assert!(full.len() > 8, "{full:?}");
        let cut = encode_source(&tokenizer, long, 8).unwrap();
        assert_eq!(cut.len(), 7);
        assert_eq!(&cut[..6], &full[..6]);
        assert_eq!(cut[6], EOS);
        let short = encode_source(&tokenizer, "a b", 8).unwrap();
        assert_eq!(short.last(), Some(&EOS));
        assert_eq!(short.len(), tokenizer.encode("a b").unwrap().len() + 1);

        let inference = encode_for_inference(&tokenizer, &pairs, 8).unwrap();
        assert_eq!(inference.examples.len(), 2);
        assert_eq!(inference.examples[0].src, cut);
        assert_eq!(inference.examples[1].src, short);
        assert_eq!(inference.filtered_long, 0);

        let training = encode_pairs(&tokenizer, &pairs, 6).unwrap();
        assert_eq!(training.filtered_long, 1);
        assert_eq!(training.examples.len(), 1);
        assert_eq!(training.examples[0].index, 1);
    }
}
