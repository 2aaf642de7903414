//! The layout of a run directory and loading a trained model from it.
//!
//! ```text
//! RUN/config.toml        effective config
//! RUN/tokenizer.json     joint BPE tokenizer
//! RUN/checkpoint.bin     last resumable checkpoint (model + Adam + state)
//! RUN/model-best.bpk     weights with the best validation NLL (burnpack)
//! RUN/log.jsonl          one line per logging interval and per validation
//! RUN/metrics.json       final summary
//! RUN/timing.json        wall-clock training seconds at the last checkpoint
//! RUN/.lock              advisory lock of the training process (see `lock`)
//! ```

use crate::config::ExperimentConfig;
use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use seqls_data::SubwordTokenizer;
use seqls_model::Transformer;
use std::collections::BTreeMap;
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
    /// Wall-clock training time so far (kept out of the checkpoint, which stays byte-reproducible).
    pub fn timing(&self) -> PathBuf {
        self.root.join("timing.json")
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
        let (bytes, origin) = if self.best_model().exists() {
            let path = self.best_model();
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            (bytes, path.display().to_string())
        } else if self.checkpoint().exists() {
            let path = self.checkpoint();
            let bytes = crate::checkpoint::load(&path)?.1;
            (bytes, format!("{} (model section)", path.display()))
        } else {
            return Err(format!(
                "{}: no trained model (run `seqls train` first)",
                self.root.display()
            ));
        };
        let model = load_weights(model, bytes, &origin)?;
        Ok((config, tokenizer, model.valid()))
    }
}

/// Model weights as burnpack bytes, byte-reproducible (see [`stable_ids`]).
pub fn weights_bytes(model: &Transformer) -> Result<Vec<u8>, String> {
    Ok(stable_ids(model)?.0)
}

/// Model weights and Adam state as burnpack bytes that two identical runs write byte for byte.
///
/// burn gives every parameter a random id (stored with the weights, and the key of the Adam state)
/// and writes the Adam state in the order of a randomly seeded hash map. Here each parameter's id is
/// replaced by its rank in the sorted parameter names (the ids are restored from the record on load,
/// so a resumed model and its Adam state agree), and the tensors are written sorted by name.
pub fn checkpoint_bytes(
    model: &Transformer,
    optimizer: &burn::optim::ModuleOptimizer,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let (weights, ids) = stable_ids(model)?;
    let optim = optimizer
        .into_bytes()
        .map_err(|e| format!("serialising the optimiser state: {e}"))?;
    let reader = read_pack(optim.to_vec())?;
    let renamed = |key: &str| -> String {
        let (head, rest) = key.split_once('.').unwrap_or((key, ""));
        match head.parse::<u64>().ok().and_then(|id| ids.get(&id)) {
            Some(new) if rest.is_empty() => new.to_string(),
            Some(new) => format!("{new}.{rest}"),
            None => key.to_string(),
        }
    };
    let metadata: Vec<(String, String)> = reader
        .metadata()
        .iter()
        .map(|(k, v)| (renamed(k), v.clone()))
        .collect();
    let scalars: Vec<(String, burn_pack::Scalar)> = reader
        .scalars()
        .iter()
        .map(|(k, v)| (renamed(k), *v))
        .collect();
    let mut tensors = reader
        .into_tensors()
        .map_err(|e| format!("reading the optimiser state: {e}"))?;
    for t in &mut tensors {
        t.name = renamed(&t.name);
        t.param_id = t.param_id.map(|id| ids.get(&id).copied().unwrap_or(id));
    }
    Ok((weights, write_pack(tensors, metadata, scalars)?))
}

/// The model's burnpack bytes with stable parameter ids, and the map from the model's ids to them.
fn stable_ids(model: &Transformer) -> Result<(Vec<u8>, BTreeMap<u64, u64>), String> {
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| format!("serialising the weights: {e}"))?;
    let reader = read_pack(bytes.to_vec())?;
    let metadata: Vec<(String, String)> = reader
        .metadata()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let scalars: Vec<(String, burn_pack::Scalar)> = reader
        .scalars()
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let mut tensors = reader
        .into_tensors()
        .map_err(|e| format!("reading the weights: {e}"))?;
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let mut ids = BTreeMap::new();
    for (rank, t) in tensors.iter_mut().enumerate() {
        let stable = rank as u64 + 1;
        if let Some(old) = t.param_id.replace(stable) {
            ids.insert(old, stable);
        }
    }
    Ok((write_pack(tensors, metadata, scalars)?, ids))
}

fn read_pack(bytes: Vec<u8>) -> Result<burn_pack::Reader, String> {
    burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| format!("reading burnpack bytes: {e}"))
}

/// Burnpack bytes of `tensors` (written sorted by name), `metadata` and `scalars`.
fn write_pack(
    mut tensors: Vec<burn_pack::Tensor>,
    metadata: Vec<(String, String)>,
    scalars: Vec<(String, burn_pack::Scalar)>,
) -> Result<Vec<u8>, String> {
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let mut writer = burn_pack::Writer::new(tensors);
    for (key, value) in &metadata {
        writer = writer.with_metadata(key, value);
    }
    for (key, value) in &scalars {
        writer = writer.with_scalar(key, *value);
    }
    Ok(writer
        .into_bytes()
        .map_err(|e| format!("writing burnpack bytes: {e}"))?
        .to_vec())
}

/// `name → shape` of every tensor in burnpack bytes.
fn tensor_shapes(bytes: Vec<u8>) -> Option<Vec<(String, Vec<usize>)>> {
    let tensors = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes))
        .ok()?
        .into_tensors()
        .ok()?;
    Some(
        tensors
            .into_iter()
            .map(|t| (t.name.clone(), t.shape.to_vec()))
            .collect(),
    )
}

/// Applies burnpack bytes to a freshly built model of the same shape. `origin` names where the bytes
/// come from (a file, or a section of the checkpoint) in errors, which say in one line what does not
/// fit: a corrupt or truncated file, another vocabulary (a tokenizer that does not belong to the
/// weights) or another model shape.
pub fn load_weights(
    model: Transformer,
    bytes: Vec<u8>,
    origin: &str,
) -> Result<Transformer, String> {
    let Some(found) = tensor_shapes(bytes.clone()) else {
        return Err(format!(
            "{origin}: not a model weights file (empty, truncated or corrupt)"
        ));
    };
    let expected = weights_bytes(&model)
        .ok()
        .and_then(tensor_shapes)
        .unwrap_or_default();
    for (name, shape) in &expected {
        match found.iter().find(|(n, _)| n == name) {
            None => {
                return Err(format!(
                    "{origin}: the weights have no tensor {name}: they were saved for another model shape (config.toml changed since training?)"
                ));
            }
            Some((_, file_shape)) if file_shape != shape => {
                let vocab_tensor = name.contains("embedding") || name.starts_with("output");
                let what = if vocab_tensor
                    && file_shape.len() == 2
                    && shape.len() == 2
                    && file_shape[1] == shape[1]
                {
                    format!(
                        "the weights are for a vocabulary of {} ids but the tokenizer has {}: tokenizer.json does not belong to these weights",
                        file_shape[0], shape[0]
                    )
                } else {
                    "they were saved for another model shape (config.toml changed since training?)"
                        .to_string()
                };
                return Err(format!(
                    "{origin}: {name} is {file_shape:?} in the file but {shape:?} in the model: {what}"
                ));
            }
            Some(_) => {}
        }
    }
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| format!("{origin}: not a model weights file ({e})"))?;
    model
        .try_load_record(record)
        .map_err(|e| format!("{origin}: the weights do not fit the model: {e}"))
}

/// Writes `text` to `path` atomically.
pub fn write_text(path: &Path, text: &str) -> Result<(), String> {
    seqls_data::read::write_atomic(path, text.as_bytes()).map_err(|e| e.to_string())
}
