//! The corpus of a run, read and encoded with the run's tokenizer.

use crate::error::TrainError;
use seqls_data::corpus::encode_pairs;
use seqls_data::{SubwordTokenizer, train_tokenizer};
use seqls_run::ExperimentConfig;
use seqls_run::run::RunDir;

/// The corpus of a run, encoded with its tokenizer.
pub(crate) struct RunData {
    pub(crate) tokenizer: SubwordTokenizer,
    pub(crate) train: seqls_data::EncodedCorpus,
    pub(crate) valid: seqls_data::EncodedCorpus,
    /// The validation references (detokenised text), by pair index.
    pub(crate) valid_refs: Vec<String>,
    /// Training pairs skipped because a side is empty.
    pub(crate) skipped_empty: usize,
}

impl RunData {
    /// Reads the training and validation splits and encodes them with the run's tokenizer: the saved
    /// one when resuming, else the teacher's, else one trained on the training split.
    pub(crate) fn load(
        config: &ExperimentConfig,
        run: &RunDir,
        resuming: bool,
        teacher_tokenizer: Option<SubwordTokenizer>,
    ) -> Result<RunData, crate::error::TrainError> {
        let train_text = config.data.load_split("train")?;
        let valid_text = config.data.load_split("val")?;
        let tokenizer = match (resuming, teacher_tokenizer) {
            (true, _) => SubwordTokenizer::load(&run.tokenizer())?,
            (false, Some(tokenizer)) => tokenizer,
            (false, None) => train_tokenizer(&train_text.pairs, config.data.vocab_size)?,
        };
        let train = encode_pairs(&tokenizer, &train_text.pairs, config.data.max_len)?;
        let valid = encode_pairs(&tokenizer, &valid_text.pairs, config.model.max_len - 2)?;
        if train.examples.is_empty() {
            return Err(TrainError::EmptySplit("training"));
        }
        if valid.examples.is_empty() {
            return Err(TrainError::EmptySplit("validation"));
        }
        Ok(RunData {
            tokenizer,
            train,
            valid,
            valid_refs: valid_text.pairs.iter().map(|p| p.tgt.clone()).collect(),
            skipped_empty: train_text.stats.skipped_empty,
        })
    }

    /// The `data:` line of the log.
    pub(crate) fn describe(&self, config: &ExperimentConfig) {
        eprintln!(
            "data: {} train pairs ({} empty skipped, {} longer than {} tokens filtered), {} validation pairs; vocabulary {}; length-sorted batches of ≤ {} tokens are {:.1}% padding",
            self.train.examples.len(),
            self.skipped_empty,
            self.train.filtered_long,
            config.data.max_len,
            self.valid.examples.len(),
            self.tokenizer.vocab_size(),
            config.data.max_tokens,
            100.0
                * seqls_data::batch::padding_fraction(&self.train.examples, config.data.max_tokens)
        );
    }
}
