//! Joint BPE subword tokenizer (Hugging Face `tokenizers`), saved as a standard `tokenizer.json`.
//!
//! Pipeline: no normaliser (so text round-trips byte for byte); pre-tokenizer = Metaspace (`▁` marks a
//! preceding space, SentencePiece style) then punctuation isolated; model = BPE with `<unk>`; decoder =
//! Metaspace, which turns `▁` back into spaces, so `decode(encode(s)) == s` for sentences with single
//! spaces between words and no leading or trailing space.
//!
//! Special tokens have fixed ids: `<pad>` = 0, `<s>` = 1, `</s>` = 2, `<unk>` = 3.

use crate::error::{DataError, Result};
use std::path::Path;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::punctuation::Punctuation;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer, TokenizerBuilder};

pub const PAD: u32 = 0;
pub const BOS: u32 = 1;
pub const EOS: u32 = 2;
pub const UNK: u32 = 3;
pub const SPECIAL_TOKENS: [&str; 4] = ["<pad>", "<s>", "</s>", "<unk>"];

/// A trained subword tokenizer with the project's fixed special-token ids.
#[derive(Clone)]
pub struct SubwordTokenizer {
    inner: Tokenizer,
}

fn tok_err(e: impl std::fmt::Display) -> DataError {
    DataError::Tokenizer(e.to_string())
}

impl SubwordTokenizer {
    /// Trains BPE on `texts` (source and target sentences together for a joint vocabulary).
    /// `vocab_size` counts the special tokens.
    pub fn train<'a>(
        texts: impl Iterator<Item = &'a str> + Send,
        vocab_size: usize,
    ) -> Result<Self> {
        if vocab_size < 16 {
            return Err(DataError::VocabSize(vocab_size));
        }
        let specials: Vec<AddedToken> = SPECIAL_TOKENS
            .iter()
            .map(|t| AddedToken::from(*t, true))
            .collect();
        let mut trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(specials)
            .build();
        let model = BPE::builder()
            .unk_token("<unk>".to_string())
            .build()
            .map_err(tok_err)?;
        let metaspace = Metaspace::new('▁', PrependScheme::Always, true);
        let pre = Sequence::new(vec![
            PreTokenizerWrapper::Metaspace(metaspace.clone()),
            PreTokenizerWrapper::Punctuation(Punctuation::new(SplitDelimiterBehavior::Isolated)),
        ]);
        let mut tokenizer = TokenizerBuilder::new()
            .with_model(model)
            .with_normalizer(None::<NormalizerWrapper>)
            .with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(pre)))
            .with_post_processor(None::<PostProcessorWrapper>)
            .with_decoder(Some(DecoderWrapper::Metaspace(metaspace)))
            .build()
            .map_err(tok_err)?;
        tokenizer.train(&mut trainer, texts).map_err(tok_err)?;
        let tokenizer = Self {
            inner: Tokenizer::from(tokenizer),
        };
        tokenizer.check_specials()?;
        Ok(tokenizer)
    }

    /// Loads a `tokenizer.json` and checks that the special tokens have the expected ids.
    pub fn load(path: &Path) -> Result<Self> {
        let inner = Tokenizer::from_file(path)
            .map_err(|e| DataError::Tokenizer(format!("{}: {e}", path.display())))?;
        let tokenizer = Self { inner };
        tokenizer.check_specials()?;
        Ok(tokenizer)
    }

    /// Saves `tokenizer.json` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = self.inner.to_string(true).map_err(tok_err)?;
        crate::write::write_atomic(path, json.as_bytes())
    }

    fn check_specials(&self) -> Result<()> {
        for (id, token) in SPECIAL_TOKENS.iter().enumerate() {
            if self.inner.token_to_id(token) != Some(id as u32) {
                return Err(DataError::Tokenizer(format!(
                    "special token {token} must have id {id}, found {:?}",
                    self.inner.token_to_id(token)
                )));
            }
        }
        Ok(())
    }

    /// Number of token ids, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Token ids of `text`, without `<s>` / `</s>`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.inner.encode_fast(text, false).map_err(tok_err)?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Detokenised text of `ids`; special tokens are dropped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(tok_err)
    }

    /// The surface string of one token id (`▁` included), for reports.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The log-probability of each whitespace word of `decode(ids)`: the sum of `log_probs` over the
    /// word's subword tokens (a word starts at a token beginning with `▁`; special tokens, `</s>`
    /// included, are left out). `None` when the grouping does not give one entry per word of the
    /// decoded text (e.g. a lone `▁` token).
    pub fn word_log_probs(&self, ids: &[u32], log_probs: &[f32]) -> Result<Option<Vec<f64>>> {
        let mut words: Vec<f64> = Vec::new();
        for (&id, &lp) in ids.iter().zip(log_probs) {
            if id <= EOS {
                continue;
            }
            let token = self.inner.id_to_token(id).unwrap_or_default();
            match words.last_mut() {
                Some(last) if !token.starts_with('\u{2581}') => *last += lp as f64,
                _ => words.push(lp as f64),
            }
        }
        let text = self.decode(ids)?;
        Ok((text.split_whitespace().count() == words.len()).then_some(words))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENTENCES: [&str; 6] = [
        "A man in a blue shirt is standing on a ladder.",
        "Two young, White males are outside near many bushes.",
        "A woman's dog runs (fast) through the snow!",
        "Ein Mann schläft in einem grünen Raum auf einem Sofa.",
        "Männer, die 3 Bälle werfen: 12 Kinder sehen zu.",
        "A man",
    ];

    #[test]
    fn round_trip_is_exact_and_specials_have_fixed_ids() {
        let texts: Vec<&str> = SENTENCES.iter().cycle().take(60).copied().collect();
        let tok = SubwordTokenizer::train(texts.into_iter(), 300).unwrap();
        assert_eq!(tok.encode("<pad>").unwrap(), vec![PAD]);
        for s in SENTENCES {
            let ids = tok.encode(s).unwrap();
            assert!(!ids.contains(&UNK), "{s}");
            assert_eq!(tok.decode(&ids).unwrap(), s);
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokenizer.json");
        tok.save(&p).unwrap();
        let back = SubwordTokenizer::load(&p).unwrap();
        assert_eq!(
            back.encode(SENTENCES[0]).unwrap(),
            tok.encode(SENTENCES[0]).unwrap()
        );
        assert_eq!(back.vocab_size(), tok.vocab_size());
    }

    #[test]
    fn word_log_probs_sum_each_words_subwords() {
        let texts: Vec<&str> = SENTENCES.iter().cycle().take(60).copied().collect();
        let tok = SubwordTokenizer::train(texts.into_iter(), 300).unwrap();
        for s in SENTENCES {
            let mut ids = tok.encode(s).unwrap();
            ids.push(EOS);
            let lps: Vec<f32> = (0..ids.len()).map(|i| -(i as f32 + 1.0)).collect();
            let words = tok.word_log_probs(&ids, &lps).unwrap().expect(s);
            assert_eq!(words.len(), s.split_whitespace().count(), "{s}");
            // Every token but </s> counts once.
            let total: f64 = lps[..lps.len() - 1].iter().map(|&x| x as f64).sum();
            assert!((words.iter().sum::<f64>() - total).abs() < 1e-9, "{s}");
        }
        // "(fast)" is one word of several subword tokens.
        let ids = tok.encode("runs (fast) through").unwrap();
        let lps = vec![-0.5f32; ids.len()];
        let words = tok.word_log_probs(&ids, &lps).unwrap().unwrap();
        assert_eq!(words.len(), 3);
        assert!(words[1] < -1.0, "{words:?}");
    }
}
