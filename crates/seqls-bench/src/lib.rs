//! seqls-bench: throughput of training and beam-search decoding on the shapes of the PyTorch reference
//! (`bench/ref_bench.py`), and a runner for that reference so both figures come from the same
//! run on the same machine.
//!
//! Training: one step = forward, label-smoothed loss (α = 0.1), backward, global-norm clipping, Adam
//! update, on random tokens (`batch × src_len` sources, `batch × tgt_len` targets, no padding); the
//! figure is target tokens per second at the median step time. Decoding: beam search over `batch`
//! random sources of `src_len` tokens, forced to exactly `steps` decoder steps (as `min_new_tokens =
//! max_new_tokens` in Hugging Face `generate`); the figure is sentences per second at the median.

use burn::module::Module;
use burn::tensor::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use seqls_data::tokenizer::{EOS, PAD};
use seqls_data::{Example, make_batch};
use seqls_decode::{LengthPenalty, SearchConfig};
use seqls_model::{ModelConfig, Translator};
use seqls_run::TrainConfig;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// A model shape of the reference benchmark.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Shape {
    pub name: &'static str,
    pub vocab: usize,
    pub d_model: usize,
    /// Encoder layers = decoder layers.
    pub layers: usize,
    pub heads: usize,
    pub d_ff: usize,
}

/// The shapes of `ref_bench.py`.
pub const SHAPES: [Shape; 2] = [
    Shape {
        name: "XS",
        vocab: 4000,
        d_model: 128,
        layers: 2,
        heads: 4,
        d_ff: 512,
    },
    Shape {
        name: "S",
        vocab: 8000,
        d_model: 256,
        layers: 3,
        heads: 4,
        d_ff: 1024,
    },
];

impl Shape {
    pub fn by_name(name: &str) -> Result<Shape, BenchError> {
        SHAPES
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
            .copied()
            .ok_or_else(|| BenchError::UnknownShape(name.to_string()))
    }

    /// The reference's `nn.Transformer`: post-norm, dropout 0.1, one embedding for source and target,
    /// an untied output projection.
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig {
            d_model: self.d_model,
            heads: self.heads,
            encoder_layers: self.layers,
            decoder_layers: self.layers,
            d_ff: self.d_ff,
            dropout: 0.1,
            max_len: 512,
            pre_norm: false,
            tie_output: false,
            share_embeddings: true,
        }
    }
}

/// Seconds per step (median) and the throughput derived from it.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub median_s: f64,
    pub runs: usize,
    /// Target tokens/s (training) or sentences/s (decoding).
    pub per_second: f64,
}

/// Median of `xs` (the mean of the two middle values for an even count; empty → NaN): the statistic
/// every benchmark figure reports.
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// Runs `step` `warmup + runs` times and returns the median seconds of the last `runs`, as a
/// [`Timing`] of `units` per step.
fn time_steps(warmup: usize, runs: usize, units: f64, mut step: impl FnMut()) -> Timing {
    let mut times = Vec::with_capacity(runs);
    for i in 0..warmup + runs {
        let started = Instant::now();
        step();
        if i >= warmup {
            times.push(started.elapsed().as_secs_f64());
        }
    }
    let median_s = median(times);
    Timing {
        median_s,
        runs,
        per_second: units / median_s,
    }
}

/// Random token ids in `[4, vocab)` (no specials).
fn random_tokens(rng: &mut ChaCha8Rng, n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|_| rng.random_range(4..vocab as u32)).collect()
}

/// What `ref_bench.py train` prints (the fields seqls reads; a missing one is an error).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct TorchTraining {
    /// Target tokens per second of PyTorch training steps (median).
    pub tgt_tok_per_s: f64,
}

/// What `ref_bench.py decode` prints.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct HfDecoding {
    /// Sentences per second of Hugging Face `generate` (median).
    pub sent_per_s: f64,
}

/// What `ref_ct2.py` prints.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Ct2Decoding {
    pub sent_per_s: Ct2Rates,
}

/// CTranslate2 sentences per second by compute type.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Ct2Rates {
    pub ct2_float32: f64,
    pub ct2_int8: f64,
}

/// Times `runs` training steps (after 2 warm-up steps) of `shape` on `batch × src_len → tgt_len`, with
/// the default `train.shards` on up to `threads` threads. With `distill`, every step is a word-level
/// distillation step from a frozen teacher of the same shape (T = 2, β = 0.5).
#[allow(clippy::too_many_arguments)]
pub fn time_training(
    shape: Shape,
    batch: usize,
    src_len: usize,
    tgt_len: usize,
    runs: usize,
    threads: usize,
    distill: bool,
    device: &Device,
) -> Timing {
    let device = device.clone().autodiff();
    device.seed(0);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let examples: Vec<Example> = (0..batch)
        .map(|index| {
            // `src` ends in `</s>`; `make_batch` adds `<s>` / `</s>` to `tgt`: both sides get exactly
            // `src_len` / `tgt_len` positions.
            let mut src = random_tokens(&mut rng, src_len - 1, shape.vocab);
            src.push(EOS);
            Example {
                index,
                src,
                tgt: random_tokens(&mut rng, tgt_len - 1, shape.vocab),
            }
        })
        .collect();
    let rows: Vec<usize> = (0..batch).collect();
    let padded = make_batch(&examples, &rows);
    let train = TrainConfig {
        alpha: 0.1,
        ..TrainConfig::default()
    };
    let model = shape.model_config().init(shape.vocab, &device);
    let teacher = distill.then(|| seqls_train::Teacher {
        model: shape
            .model_config()
            .init(shape.vocab, &device.clone().inner())
            .valid(),
        temperature: 2.0,
        weight: 0.5,
    });
    let mut optimizer = seqls_train::adam::optimizer(&train, &device);
    let rule = seqls_train::UpdateRule::of(&train);
    let mut model = Some(model);
    time_steps(2, runs, (batch * padded.tgt_len) as f64, || {
        let (updated, outcome) = seqls_train::update(
            // Cannot fail: the closure puts the updated model back before it returns.
            model.take().expect("model"),
            teacher.as_ref(),
            &mut optimizer,
            &padded,
            &rule,
            1e-4,
            0,
            threads,
            &device,
        );
        model = Some(updated);
        assert!(outcome.loss_sum.is_finite(), "benchmark loss diverged");
    })
}

/// Times `runs` beam searches (after 1 warm-up) of `batch` random sources of `src_len` tokens (`</s>`
/// included), each forced to `steps` decoder steps, on `threads` decoding workers (`steps − 1` tokens, then `</s>`, so `steps` produced tokens).
pub fn time_decoding(
    shape: Shape,
    batch: usize,
    src_len: usize,
    steps: usize,
    beam: usize,
    runs: usize,
    threads: usize,
    device: &Device,
) -> Timing {
    device.seed(0);
    let model = shape.model_config().init(shape.vocab, device).valid();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let sources: Vec<Vec<u32>> = (0..batch)
        .map(|_| {
            let mut s = random_tokens(&mut rng, src_len - 1, shape.vocab);
            s.push(EOS);
            s
        })
        .collect();
    let search = SearchConfig {
        beam_size: beam,
        length_penalty: LengthPenalty::Power(1.0),
        min_len: steps - 1,
        max_len_a: 0.0,
        max_len_b: steps - 1,
        ..SearchConfig::default()
    };
    // Made once, as the references load (and CTranslate2 converts) their model once.
    let translator = Translator::new(&model, device);
    time_steps(1, runs, batch as f64, || {
        let out = translator.translate(&sources, &search, batch, threads, |_| {});
        assert!(
            out.iter()
                .all(|n| n[0].tokens.len() == steps && !n[0].tokens.contains(&PAD))
        );
    })
}

/// Times `runs` translations (after 1 warm-up) of `sources` with `search`, in batches of `batch`
/// sentences on `threads` workers → sentences/s: a trained model on real sentences, each stopping
/// by the search's own rule.
pub fn time_translation(
    translator: &Translator,
    sources: &[Vec<u32>],
    search: &SearchConfig,
    batch: usize,
    runs: usize,
    threads: usize,
) -> Timing {
    time_steps(1, runs, sources.len() as f64, || {
        translator.translate(sources, search, batch, threads, |_| {});
    })
}

/// Runs a Python reference script and returns its last stdout line parsed as JSON.
pub fn run_reference<T: serde::de::DeserializeOwned>(
    python: &Path,
    script: &Path,
    args: &[String],
) -> Result<T, BenchError> {
    let output = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .map_err(|source| BenchError::Spawn {
            python: python.to_path_buf(),
            source,
        })?;
    if !output.status.success() {
        return Err(BenchError::ReferenceFailed {
            command: format!("{} {}", python.display(), script.display()),
            status: output.status.to_string(),
            last_line: String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .to_string(),
        });
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rfind(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| BenchError::NoJson(script.to_path_buf()))?;
    serde_json::from_str(line).map_err(|source| BenchError::Json {
        script: script.to_path_buf(),
        source,
    })
}

/// Why a benchmark or its reference could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("unknown shape {0:?}: use XS or S")]
    UnknownShape(String),
    #[error("{}: {source}", python.display())]
    Spawn {
        python: PathBuf,
        source: std::io::Error,
    },
    #[error("{command} failed ({status}): {last_line}")]
    ReferenceFailed {
        command: String,
        status: String,
        last_line: String,
    },
    #[error("{}: no JSON line in its output", .0.display())]
    NoJson(PathBuf),
    #[error("{}: {source}", script.display())]
    Json {
        script: PathBuf,
        source: serde_json::Error,
    },
}
