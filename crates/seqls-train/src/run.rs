//! The layout of a run directory and loading a trained model from it.
//!
//! ```text
//! RUN/config.toml        effective config
//! RUN/tokenizer.json     joint BPE tokenizer
//! RUN/checkpoint.bin     last resumable checkpoint (model + Adam + state)
//! RUN/model-best.bpk     weights with the best validation NLL (burnpack)
//! RUN/log.jsonl          one line per logging interval and per validation
//! RUN/metrics.json       final summary
//! ```

use crate::config::ExperimentConfig;
use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use seqls_data::SubwordTokenizer;
use seqls_model::Transformer;
use std::path::{Path, PathBuf};

/// Paths inside a run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunDir { root: root.into() }
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn tokenizer(&self) -> PathBuf {
        self.root.join("tokenizer.json")
    }
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint.bin")
    }
    pub fn best_model(&self) -> PathBuf {
        self.root.join("model-best.bpk")
    }
    pub fn log(&self) -> PathBuf {
        self.root.join("log.jsonl")
    }
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.json")
    }

    /// Loads the effective config, the tokenizer and the best model (the last checkpoint's weights if
    /// no best model was written yet), ready for inference on `device`.
    pub fn load_model(
        &self,
        device: &Device,
    ) -> Result<(ExperimentConfig, SubwordTokenizer, Transformer), String> {
        if !self.root.is_dir() {
            return Err(format!("{}: no such run directory", self.root.display()));
        }
        let config = ExperimentConfig::load(&self.config())?;
        let tokenizer = SubwordTokenizer::load(&self.tokenizer()).map_err(|e| e.to_string())?;
        let model = config.model.init(tokenizer.vocab_size(), device);
        let bytes = if self.best_model().exists() {
            std::fs::read(self.best_model())
                .map_err(|e| format!("{}: {e}", self.best_model().display()))?
        } else if self.checkpoint().exists() {
            crate::checkpoint::load(&self.checkpoint())?.1
        } else {
            return Err(format!(
                "{}: no trained model (run `seqls train` first)",
                self.root.display()
            ));
        };
        let model =
            load_weights(model, bytes).map_err(|e| format!("{}: {e}", self.root.display()))?;
        Ok((config, tokenizer, model.valid()))
    }
}

/// Model weights as burnpack bytes.
pub fn weights_bytes(model: &Transformer) -> Vec<u8> {
    model
        .clone()
        .into_record()
        .into_bytes()
        .expect("model serialises")
        .to_vec()
}

/// Applies burnpack bytes to a freshly built model of the same shape.
pub fn load_weights(model: Transformer, bytes: Vec<u8>) -> Result<Transformer, String> {
    let record =
        ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes)).map_err(|e| e.to_string())?;
    model.try_load_record(record).map_err(|e| e.to_string())
}

/// Writes `text` to `path` atomically.
pub fn write_text(path: &Path, text: &str) -> Result<(), String> {
    seqls_data::read::write_atomic(path, text.as_bytes()).map_err(|e| e.to_string())
}
