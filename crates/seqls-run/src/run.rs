//! The layout of a run directory and loading a trained model from it.
//!
//! ```text
//! RUN/config.toml        effective config
//! RUN/tokenizer.json     joint BPE tokenizer
//! RUN/checkpoint.bin     last resumable checkpoint (model + Adam + state)
//! RUN/model-best.bpk     weights with the best validation NLL (burnpack)
//! RUN/update-<N>.bpk     weights at the end of an epoch (the last `train.keep_last`)
//! RUN/model-average.bpk  average of kept weights (`seqls average`); loaded before model-best.bpk
//! RUN/log.jsonl          one line per logging interval and per validation
//! RUN/metrics.json       final summary
//! RUN/timing.json        wall-clock training seconds at the last checkpoint
//! RUN/.lock              advisory lock of the training process (see `lock`)
//! ```

use crate::config::ExperimentConfig;
use crate::error::{At, RunError};
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
    /// Weights kept at update `step` (`train.keep_last`).
    pub fn kept_weights(&self, step: usize) -> PathBuf {
        self.root.join(format!("update-{step}.bpk"))
    }
    /// The kept weights `(update, path)`, oldest first.
    pub fn kept(&self) -> Vec<(usize, PathBuf)> {
        let mut kept: Vec<(usize, PathBuf)> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                let step = name
                    .strip_prefix("update-")?
                    .strip_suffix(".bpk")?
                    .parse()
                    .ok()?;
                Some((step, e.path()))
            })
            .collect();
        kept.sort();
        kept
    }
    /// The average of kept weights (`seqls average`, `train.average_last`); loaded in preference to
    /// `model-best.bpk`.
    pub fn average_model(&self) -> PathBuf {
        self.root.join("model-average.bpk")
    }
    /// The evaluation of `split` at beam size `beam` (`seqls eval`): `eval-<split>-beam<K>.json`, with
    /// `.hyp.txt` and `-reliability.{png,svg}` next to it.
    pub fn eval_file(&self, split: &str, beam: usize) -> PathBuf {
        self.root.join(format!("eval-{split}-beam{beam}.json"))
    }
    /// Wall-clock training time so far (kept out of the checkpoint, which stays byte-reproducible).
    pub fn timing(&self) -> PathBuf {
        self.root.join("timing.json")
    }

    /// Loads the effective config, the tokenizer and the model, ready for inference on `device`:
    /// the averaged weights if there are any, else the best, else the last checkpoint's.
    pub fn load_model(
        &self,
        device: &Device,
    ) -> Result<(ExperimentConfig, SubwordTokenizer, Transformer), crate::error::RunError> {
        self.load_model_with(device, None)
    }

    /// [`load_model`](Self::load_model) with the weights of `weights` (a burnpack file of this run,
    /// such as a kept `update-<N>.bpk`) when given.
    pub fn load_model_with(
        &self,
        device: &Device,
        weights: Option<&Path>,
    ) -> Result<(ExperimentConfig, SubwordTokenizer, Transformer), crate::error::RunError> {
        if !self.root.is_dir() {
            return Err(RunError::NoRunDir(self.root.clone()));
        }
        let config = ExperimentConfig::load(&self.config())?;
        let tokenizer = SubwordTokenizer::load(&self.tokenizer())?;
        let model = config.model.init(tokenizer.vocab_size(), device);
        let read = |path: &Path| -> Result<(Vec<u8>, String), crate::error::RunError> {
            let bytes = std::fs::read(path).at(path.display())?;
            Ok((bytes, path.display().to_string()))
        };
        let (bytes, origin) = if let Some(path) = weights {
            read(path)?
        } else if self.average_model().exists() {
            read(&self.average_model())?
        } else if self.best_model().exists() {
            read(&self.best_model())?
        } else if self.checkpoint().exists() {
            let path = self.checkpoint();
            let bytes = crate::checkpoint::load(&path)?.1;
            (bytes, format!("{} (model section)", path.display()))
        } else {
            return Err(RunError::NoModel(self.root.clone()));
        };
        let model = load_weights(model, bytes, &origin)?;
        Ok((config, tokenizer, model.valid()))
    }
}

/// Model weights as burnpack bytes, byte-reproducible (see [`stable_ids`]).
pub fn weights_bytes(model: &Transformer) -> Result<Vec<u8>, crate::error::RunError> {
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
) -> Result<(Vec<u8>, Vec<u8>), crate::error::RunError> {
    let (weights, ids) = stable_ids(model)?;
    let optim = optimizer
        .into_bytes()
        .at("serialising the optimiser state")?;
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
    let mut tensors = reader.into_tensors().at("reading the optimiser state")?;
    for t in &mut tensors {
        t.name = renamed(&t.name);
        t.param_id = t.param_id.map(|id| ids.get(&id).copied().unwrap_or(id));
    }
    Ok((weights, write_pack(tensors, metadata, scalars)?))
}

/// The model's burnpack bytes with stable parameter ids, and the map from the model's ids to them.
fn stable_ids(
    model: &Transformer,
) -> Result<(Vec<u8>, BTreeMap<u64, u64>), crate::error::RunError> {
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .at("serialising the weights")?;
    let reader = read_pack(bytes.to_vec())?;
    let (metadata, scalars) = pack_parts(&reader);
    let mut tensors = reader.into_tensors().at("reading the weights")?;
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

/// The metadata and scalar entries of a burnpack, as [`write_pack`] takes them.
type PackParts = (Vec<(String, String)>, Vec<(String, burn_pack::Scalar)>);

fn pack_parts(reader: &burn_pack::Reader) -> PackParts {
    let metadata = reader
        .metadata()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let scalars = reader
        .scalars()
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    (metadata, scalars)
}

fn read_pack(bytes: Vec<u8>) -> Result<burn_pack::Reader, crate::error::RunError> {
    burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes)).at("reading burnpack bytes")
}

/// Burnpack bytes of `tensors` (written sorted by name), `metadata` and `scalars`.
fn write_pack(
    mut tensors: Vec<burn_pack::Tensor>,
    metadata: Vec<(String, String)>,
    scalars: Vec<(String, burn_pack::Scalar)>,
) -> Result<Vec<u8>, crate::error::RunError> {
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let mut writer = burn_pack::Writer::new(tensors);
    for (key, value) in &metadata {
        writer = writer.with_metadata(key, value);
    }
    for (key, value) in &scalars {
        writer = writer.with_scalar(key, *value);
    }
    Ok(writer.into_bytes().at("writing burnpack bytes")?.to_vec())
}

/// The element-wise mean of the weights in `files` (burnpack files of one model), as burnpack bytes:
/// fairseq's `average_checkpoints.py`. Every file must hold the same tensors with the same shapes;
/// float32 tensors are summed in float64 and divided by the number of files.
pub fn average_weights(files: &[PathBuf]) -> Result<Vec<u8>, crate::error::RunError> {
    let Some(first) = files.first() else {
        return Err(RunError::NothingToAverage);
    };
    let read = |path: &PathBuf| -> Result<burn_pack::Reader, crate::error::RunError> {
        let bytes = std::fs::read(path).at(path.display())?;
        read_pack(bytes).at(path.display())
    };
    let base = read(first)?;
    let (metadata, scalars) = pack_parts(&base);
    let base_tensors = base.into_tensors().at(first.display())?;
    let mut sums: Vec<Vec<f64>> = Vec::with_capacity(base_tensors.len());
    let f32_of =
        |t: &burn_pack::Tensor, path: &PathBuf| -> Result<Vec<f32>, crate::error::RunError> {
            if t.dtype != burn_pack::DType::F32 {
                return Err(RunError::NotFloat32 {
                    file: path.clone(),
                    tensor: t.name.clone(),
                });
            }
            let bytes = t.to_bytes().at(path.display())?;
            Ok(bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
    for t in &base_tensors {
        sums.push(f32_of(t, first)?.into_iter().map(f64::from).collect());
    }
    for path in &files[1..] {
        let tensors = read(path)?.into_tensors().at(path.display())?;
        for (sum, base_t) in sums.iter_mut().zip(&base_tensors) {
            let t = tensors
                .iter()
                .find(|t| t.name == base_t.name && t.shape == base_t.shape)
                .ok_or_else(|| RunError::NotSameModel {
                    file: path.clone(),
                    tensor: base_t.name.clone(),
                    shape: base_t.shape.to_vec(),
                    first: first.clone(),
                })?;
            for (s, v) in sum.iter_mut().zip(f32_of(t, path)?) {
                *s += f64::from(v);
            }
        }
    }
    let n = files.len() as f64;
    let tensors = base_tensors
        .iter()
        .zip(sums)
        .map(|(t, sum)| {
            let bytes: Vec<u8> = sum
                .into_iter()
                .flat_map(|s| ((s / n) as f32).to_le_bytes())
                .collect();
            burn_pack::Tensor::new(
                t.name.clone(),
                t.dtype,
                t.shape.clone(),
                t.param_id,
                Bytes::from_bytes_vec(bytes),
            )
        })
        .collect();
    write_pack(tensors, metadata, scalars)
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
) -> Result<Transformer, crate::error::RunError> {
    let Some(found) = tensor_shapes(bytes.clone()) else {
        return Err(RunError::NotWeights {
            origin: origin.to_string(),
            problem: "empty, truncated or corrupt".into(),
        });
    };
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes)).map_err(|e| {
        RunError::NotWeights {
            origin: origin.to_string(),
            problem: e.to_string(),
        }
    })?;
    // Only a failed load pays for the diagnosis (serialising a fresh model for its shapes).
    let fresh = model.clone();
    model.try_load_record(record).map_err(|e| {
        RunError::WeightsMismatch(
            mismatch(&fresh, &found, origin)
                .unwrap_or_else(|| format!("{origin}: the weights do not fit the model: {e}")),
        )
    })
}

/// Which tensor of the file does not fit `model`, and the likely cause, in one line.
fn mismatch(model: &Transformer, found: &[(String, Vec<usize>)], origin: &str) -> Option<String> {
    let expected = weights_bytes(model).ok().and_then(tensor_shapes)?;
    for (name, shape) in &expected {
        let Some((_, file_shape)) = found.iter().find(|(n, _)| n == name) else {
            return Some(format!(
                "{origin}: the weights have no tensor {name}: they were saved for another model shape (config.toml changed since training?)"
            ));
        };
        if file_shape == shape {
            continue;
        }
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
        return Some(format!(
            "{origin}: {name} is {file_shape:?} in the file but {shape:?} in the model: {what}"
        ));
    }
    None
}

/// Writes `text` to `path` atomically.
pub fn write_text(path: &Path, text: &str) -> Result<(), crate::error::RunError> {
    seqls_data::write::write_atomic(path, text.as_bytes()).map_err(Into::into)
}
