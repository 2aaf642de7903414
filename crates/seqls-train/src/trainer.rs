//! The training loop.
//!
//! Each update: pad a token-budget batch, run the teacher-forced forward pass, compute the
//! label-smoothed loss ([`seqls_model::loss`]) divided by the number of non-pad target tokens (or
//! sentences), back-propagate, rescale the gradients so that their global L2 norm is at most
//! `clip_norm`, and take an Adam step at the inverse-square-root learning rate. The batch is split into
//! `train.shards` row shards whose passes run in parallel ([`update`]). Dropout masks are a function of
//! `(seed, update, shard)` and the batch order of an epoch of `(seed, epoch)`, so a run resumed from a
//! checkpoint ends bit-identical to an uninterrupted one on the CPU, whatever `--threads`.

use crate::schedule::learning_rate;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use seqls_data::corpus::encode_pairs;
use seqls_data::tokenizer::PAD;
use seqls_data::{Batch, Example, SubwordTokenizer, make_batch, plan_batches, train_tokenizer};
use seqls_decode::{LengthPenalty, SearchConfig};
use seqls_model::tensors::{BatchTensors, f32_data, f32_slice, f32_vec, on_cpu};
use seqls_model::{
    HostOutput, Normalize, Smoothing, Transformer, distillation_objective, loss_sums,
    training_objective, translate,
};
use seqls_run::checkpoint::{self, TrainState};
use seqls_run::error::At;
use seqls_run::results::{append_log, truncate_log};
use seqls_run::run::{
    RunDir, average_weights, checkpoint_bytes, load_weights, weights_bytes, write_text,
};
use seqls_run::{ExperimentConfig, LogLine, RunLock, TrainConfig, TrainSummary, ValidMetrics};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What `train` does with the checkpoint of the run directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A new run; refused when the directory holds a checkpoint.
    Fresh,
    /// Continue the checkpoint; refused when there is none, or when a setting that changes results
    /// differs from the run's `config.toml` ([`changed_settings`]).
    Resume,
    /// Continue the checkpoint when there is one, else start a new run (sweep jobs).
    ResumeOrStart,
}

/// How to run `train` (what is not part of the experiment config).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub run_dir: PathBuf,
    pub start: Start,
    /// No progress bars; log lines only.
    pub quiet: bool,
    /// The device to train on (without autodiff; it is added here).
    pub device: Device,
    /// Threads used on the CPU (the size of the global rayon pool, set by the caller): with 1 the
    /// shards of a batch run one after the other on the calling thread, else as tasks of that pool.
    pub threads: usize,
}

/// Sums the squares of every parameter's gradient.
struct GradSquares<'a> {
    grads: &'a GradientsParams,
    parts: Vec<Tensor<1>>,
}

impl ModuleVisitor for GradSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.parts.push(g.square().sum());
        }
    }
}

/// Multiplies every parameter's gradient by `factor`.
struct GradScale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl ModuleVisitor for GradScale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.factor));
        }
    }
}

/// On the CPU: the shards' gradients summed parameter by parameter (in shard order, in the first
/// shard's buffer) and, in the same pass, the sum of their squares (the global norm's square), in
/// place of burn's tensor additions and reductions.
struct HostShardSum {
    shards: Vec<GradientsParams>,
    sum: GradientsParams,
    squares: f64,
}

impl ModuleVisitor for HostShardSum {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let mut parts = self
            .shards
            .iter_mut()
            .filter_map(|g| g.remove::<D>(param.id));
        let Some(first) = parts.next() else {
            return;
        };
        let (shape, device) = (first.shape(), first.device());
        let mut total = f32_vec(first);
        for part in parts {
            let part = f32_data(part);
            for (t, &g) in total.iter_mut().zip(f32_slice(&part)) {
                *t += g;
            }
        }
        // Eight interleaved partial sums (a fixed order, vectorised), then f64 across parameters.
        let mut lanes = [0f32; 8];
        let chunks = total.chunks_exact(8);
        let tail: f32 = chunks.remainder().iter().map(|g| g * g).sum();
        for chunk in chunks {
            for j in 0..8 {
                lanes[j] += chunk[j] * chunk[j];
            }
        }
        self.squares += lanes.iter().map(|&x| x as f64).sum::<f64>() + tail as f64;
        let total = Tensor::<D>::from_data(TensorData::new(total, shape), &device);
        self.sum.register(param.id, total);
    }
}

/// On the CPU: multiplies every parameter's gradient by `factor` in place.
struct HostScale<'a> {
    grads: &'a mut GradientsParams,
    factor: f32,
}

impl ModuleVisitor for HostScale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            let (shape, device) = (g.shape(), g.device());
            let mut values = f32_vec(g);
            values.iter_mut().for_each(|g| *g *= self.factor);
            let scaled = Tensor::<D>::from_data(TensorData::new(values, shape), &device);
            self.grads.register(param.id, scaled);
        }
    }
}

/// The shards' gradients summed parameter by parameter in shard order, then rescaled so that their
/// global L2 norm is at most `max_norm` (0: no clipping): on the host ([`HostShardSum`],
/// [`HostScale`]) or in burn's tensor operations.
fn summed_and_clipped(
    model: &Transformer,
    shards: Vec<GradientsParams>,
    max_norm: f64,
    on_host: bool,
) -> GradientsParams {
    if on_host {
        let mut sum = HostShardSum {
            shards,
            sum: GradientsParams::new(),
            squares: 0.0,
        };
        model.visit(&mut sum);
        let mut grads = sum.sum;
        let norm = sum.squares.sqrt();
        if max_norm > 0.0 && norm > max_norm {
            model.visit(&mut HostScale {
                grads: &mut grads,
                factor: (max_norm / (norm + 1e-6)) as f32,
            });
        }
        grads
    } else {
        let mut sum = GradientsAccumulator::<Transformer>::new();
        for grads in shards {
            sum.accumulate(model, grads);
        }
        let mut grads = sum.grads();
        clip_global_norm(model, &mut grads, max_norm);
        grads
    }
}

/// Rescales `grads` so that their global L2 norm is at most `max_norm`; returns the norm before.
fn clip_global_norm(model: &Transformer, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let mut squares = GradSquares {
        grads,
        parts: vec![],
    };
    model.visit(&mut squares);
    let norm = Tensor::cat(squares.parts, 0)
        .sum()
        .into_scalar::<f64>()
        .sqrt();
    if max_norm > 0.0 && norm > max_norm {
        model.visit(&mut GradScale {
            grads,
            factor: max_norm / (norm + 1e-6),
        });
    }
    norm
}

/// A frozen teacher for word-level distillation (`train.teacher`): its model on the inner device, so
/// that it runs without dropout and outside the autodiff graph.
pub struct Teacher {
    pub model: Transformer,
    pub temperature: f64,
    pub weight: f64,
}

impl Teacher {
    /// Loads `train.teacher` (if set) on the inner device of `device`, with its tokenizer, which the
    /// student must use. Errors name the teacher directory: no weights, or a student whose
    /// `data.vocab_size` differs from the teacher's vocabulary.
    pub fn load(
        config: &ExperimentConfig,
        device: &Device,
    ) -> Result<Option<(Teacher, SubwordTokenizer)>, crate::error::TrainError> {
        let Some(dir) = &config.train.teacher else {
            return Ok(None);
        };
        let run = RunDir::new(dir);
        if !run.best_model().exists() && !run.average_model().exists() && !run.checkpoint().exists()
        {
            return Err(format!(
                "train.teacher {}: no trained model there (model-best.bpk, model-average.bpk or checkpoint.bin)",
                dir.display()
            ).into());
        }
        let (_, tokenizer, model) = run
            .load_model(&device.clone().inner())
            .map_err(|e| format!("train.teacher {}: {e}", dir.display()))?;
        if tokenizer.vocab_size() != config.data.vocab_size {
            return Err(format!(
                "train.teacher {}: its tokenizer has {} ids but the student's data.vocab_size is {}: a student uses its teacher's tokenizer, so set data.vocab_size = {}",
                dir.display(),
                tokenizer.vocab_size(),
                config.data.vocab_size,
                tokenizer.vocab_size()
            ).into());
        }
        Ok(Some((
            Teacher {
                model,
                temperature: config.train.kd_temperature,
                weight: config.train.kd_weight,
            },
            tokenizer,
        )))
    }
}

/// The sums of one update's batch (nats), before the step.
#[derive(Debug, Clone, Copy)]
pub struct StepOutcome {
    pub loss_sum: f64,
    pub nll_sum: f64,
    pub n_tokens: usize,
}

/// What one shard of an update computed: its gradients (of its share of the batch objective) and its
/// loss sums.
struct ShardPass {
    grads: GradientsParams,
    outcome: StepOutcome,
}

/// Forward, label-smoothed loss and backward of one shard on a replica of `model` (`Module::fork`: the
/// same parameters under an autodiff graph of its own, so shards can run concurrently). The objective
/// is the shard's smoothed loss sum divided by the whole batch's `denominator`, so the shards'
/// gradients add up to the gradient of the batch objective. Dropout is seeded with
/// `(dropout_seed, shard)` on the calling thread. A non-finite loss skips the backward pass.
#[allow(clippy::too_many_arguments)]
fn shard_pass(
    model: &Transformer,
    teacher: Option<&Teacher>,
    output: Option<&HostOutput>,
    shard: &Batch,
    index: usize,
    t: &TrainConfig,
    denominator: f64,
    dropout_seed: u64,
    device: &Device,
) -> ShardPass {
    let _masks = seqls_model::dropout::seeded(step_seed(dropout_seed, index));
    let replica = model.clone().fork(device);
    let tensors = BatchTensors::new(shard, device);
    // The teacher runs on the inner device: no dropout, no graph; its logits are a constant.
    let teacher_logits = teacher.map(|teacher| {
        let plain = BatchTensors::new(shard, &device.clone().inner());
        let logits = teacher.model.forward(plain.src, plain.tgt_in, PAD).logits;
        (logits, teacher.temperature, teacher.weight)
    });
    let (sums, objective, weight_gradient) = match output {
        Some(output) => {
            let hidden = replica.decoder_states(tensors.src, tensors.tgt_in, PAD);
            let host = output.objective(
                hidden,
                &shard.tgt_out,
                smoothing(t),
                teacher_logits,
                denominator,
            );
            (host.sums, host.surrogate, Some(host.weight_gradient))
        }
        None => {
            let logits = replica.forward(tensors.src, tensors.tgt_in, PAD).logits;
            let (sums, objective) = training_objective(
                logits,
                &shard.tgt_out,
                smoothing(t),
                teacher_logits,
                denominator,
            );
            (sums, objective, None)
        }
    };
    let loss_sum = match teacher {
        Some(teacher) => distillation_objective(&sums, teacher.weight, teacher.temperature),
        None => sums.smoothed,
    };
    let outcome = StepOutcome {
        loss_sum,
        nll_sum: sums.nll,
        n_tokens: sums.tokens,
    };
    let grads = if outcome.loss_sum.is_finite() {
        let mut grads = GradientsParams::from_grads(objective.backward(), &replica);
        if let (Some(output), Some(weight_gradient)) = (output, weight_gradient) {
            output.add_gradient(&mut grads, weight_gradient);
        }
        grads
    } else {
        GradientsParams::new()
    };
    ShardPass { grads, outcome }
}

/// The label-smoothed target of `t`'s loss.
fn smoothing(t: &TrainConfig) -> Smoothing {
    Smoothing {
        alpha: t.alpha,
        variant: t.ls_variant,
        pad_id: PAD,
    }
}

/// One update on `batch` at learning rate `lr`: forward, label-smoothed loss, backward, global-norm
/// clipping, Adam step. `device` must be an autodiff device.
///
/// Data parallelism on the CPU (a burn-flex op gains little from a second thread at these sizes): the
/// batch's rows are split into `t.shards` shards ([`Batch::split_rows`]), whose forward and backward
/// passes run as tasks of the global rayon pool (in turn on this thread when `threads` is 1); the shard
/// gradients are summed in shard order, so the result depends on `t.shards` but not on `threads`. Dropout masks are a function of
/// `(dropout_seed, shard)`. A non-finite loss leaves the model unchanged (the caller stops).
#[allow(clippy::too_many_arguments)]
pub fn update(
    model: Transformer,
    teacher: Option<&Teacher>,
    optimizer: &mut ModuleOptimizer,
    batch: &Batch,
    t: &TrainConfig,
    lr: f64,
    dropout_seed: u64,
    threads: usize,
    device: &Device,
) -> (Transformer, StepOutcome) {
    let denominator = match t.normalize {
        Normalize::Tokens => batch.target_tokens().max(1),
        Normalize::Sentences => batch.rows,
    } as f64;
    let shards = batch.split_rows(t.shards);
    let n_shards = shards.len();
    let workers = threads.clamp(1, n_shards);
    let output = HostOutput::for_device(&model, device);
    let pass = |model: &Transformer, i: usize| {
        shard_pass(
            model,
            teacher,
            output.as_ref(),
            &shards[i],
            i,
            t,
            denominator,
            dropout_seed,
            device,
        )
    };
    let passes: Vec<ShardPass> = if workers == 1 {
        (0..n_shards).map(|i| pass(&model, i)).collect()
    } else {
        // The shards are tasks of the global rayon pool (`--threads` threads), which burn's parallel
        // gemm joins from inside a task: never more busy threads than cores, and a thread waiting in
        // one shard's gemm helps with the other's. Dropout masks survive this nesting
        // (`dropout::seeded` restores the generator of the interrupted shard).
        let mut slots: Vec<Option<ShardPass>> = (0..n_shards).map(|_| None).collect();
        rayon::scope(|scope| {
            for (i, slot) in slots.iter_mut().enumerate() {
                let (model, pass) = (&model, &pass);
                scope.spawn(move |_| *slot = Some(pass(model, i)));
            }
        });
        // Cannot fail: `rayon::scope` returns after every spawned task has filled its slot (a panic
        // in a task is re-raised by the scope).
        slots.into_iter().map(|p| p.expect("shard ran")).collect()
    };
    let mut outcome = StepOutcome {
        loss_sum: 0.0,
        nll_sum: 0.0,
        n_tokens: 0,
    };
    let mut shards = Vec::with_capacity(passes.len());
    for p in passes {
        outcome.loss_sum += p.outcome.loss_sum;
        outcome.nll_sum += p.outcome.nll_sum;
        outcome.n_tokens += p.outcome.n_tokens;
        shards.push(p.grads);
    }
    if !outcome.loss_sum.is_finite() {
        return (model, outcome);
    }
    let on_host = on_cpu(device);
    let grads = summed_and_clipped(&model, shards, t.clip_norm, on_host);
    (optimizer.step(lr, model, grads), outcome)
}

/// Teacher-forced validation of `model` (without dropout) on `examples`.
pub fn validate(
    model: &Transformer,
    examples: &[Example],
    config: &ExperimentConfig,
    device: &Device,
) -> ValidMetrics {
    let (mut smoothed, mut nll, mut correct, mut tokens) = (0.0, 0.0, 0usize, 0usize);
    for group in plan_batches(examples, config.data.max_tokens, None) {
        let batch = make_batch(examples, &group);
        let tensors = BatchTensors::new(&batch, device);
        let logits = model.forward(tensors.src, tensors.tgt_in, PAD).logits;
        let sums = loss_sums(logits, &batch.tgt_out, smoothing(&config.train));
        smoothed += sums.smoothed;
        nll += sums.nll;
        correct += sums.correct;
        tokens += sums.tokens;
    }
    let n = tokens.max(1) as f64;
    ValidMetrics {
        smoothed_loss: smoothed / n,
        nll: nll / n,
        perplexity: (nll / n).exp(),
        accuracy: correct as f64 / n,
        tokens,
    }
}

/// Greedy-decodes `examples` and returns the sacreBLEU score against `references`.
fn greedy_bleu(
    model: &Transformer,
    tokenizer: &SubwordTokenizer,
    examples: &[Example],
    references: &[String],
    device: &Device,
    threads: usize,
) -> Result<f64, crate::error::TrainError> {
    let search = SearchConfig {
        beam_size: 1,
        length_penalty: LengthPenalty::Power(0.0),
        ..SearchConfig::default()
    };
    let sources: Vec<Vec<u32>> = examples.iter().map(|e| e.src.clone()).collect();
    let hyps = translate(model, &sources, &search, device, 128, threads, |_| {})
        .into_iter()
        .map(|nbest| {
            tokenizer
                // Cannot fail: beam search finishes at least one hypothesis for every non-empty source.
                .decode(&nbest[0].tokens)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<String> = examples
        .iter()
        .map(|e| references[e.index].clone())
        .collect();
    Ok(seqls_eval::corpus_bleu(&hyps, &[refs], &seqls_eval::BleuOptions::default())?.score)
}

fn write_atomic_bytes(path: &Path, bytes: &[u8]) -> Result<(), crate::error::TrainError> {
    seqls_data::read::write_atomic(path, bytes).map_err(Into::into)
}

/// Settings whose change alters the results of a run: everything but the names below, which only
/// decide how long it trains, how often it logs, validates and checkpoints, where its data lives,
/// and how it is decoded and swept. Those may differ when a run is resumed.
pub const SAFE_TO_CHANGE_ON_RESUME: &[&str] = &[
    "name",
    "data.data_dir",
    "train.max_epochs",
    "train.max_steps",
    "train.log_every",
    "train.valid_every",
    "train.checkpoint_every",
    "train.valid_bleu",
    "train.max_time",
    "train.keep_last",
    "train.average_last",
    "decode",
    "sweep",
    "distill",
];

/// The settings that differ between the run's saved config and `new`, as `key: old → new`, leaving
/// out [`SAFE_TO_CHANGE_ON_RESUME`].
pub fn changed_settings(saved: &ExperimentConfig, new: &ExperimentConfig) -> Vec<String> {
    fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
        match value {
            toml::Value::Table(table) => {
                for (k, v) in table {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, v, out);
                }
            }
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let as_pairs = |c: &ExperimentConfig| {
        let mut out = vec![];
        if let Ok(value) = toml::Value::try_from(c) {
            flatten("", &value, &mut out);
        }
        out
    };
    let safe = |key: &str| {
        SAFE_TO_CHANGE_ON_RESUME
            .iter()
            .any(|s| key == *s || key.starts_with(&format!("{s}.")))
    };
    let (old, new) = (as_pairs(saved), as_pairs(new));
    let mut keys: Vec<&String> = old.iter().chain(&new).map(|(k, _)| k).collect();
    keys.sort();
    keys.dedup();
    let value = |pairs: &[(String, String)], key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map_or("(unset)".to_string(), |(_, v)| v.clone())
    };
    keys.into_iter()
        .filter(|k| !safe(k))
        .filter_map(|k| {
            let (a, b) = (value(&old, k), value(&new, k));
            (a != b).then(|| format!("{k}: {a} → {b}"))
        })
        .collect()
}

/// Time spent at a checkpoint (`timing.json`), summed over resumes.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize)]
struct Timing {
    step: usize,
    /// Seconds inside training updates.
    train_seconds: f64,
    /// Wall-clock seconds of the whole run: data, tokenizer, updates, validation, checkpoints.
    #[serde(default)]
    wall_seconds: f64,
}

/// The clocks of a run: update time and wall-clock time, both carried over from earlier invocations.
struct Clock {
    train_seconds: f64,
    wall_before: f64,
    started: Instant,
}

impl Clock {
    /// Wall-clock seconds of the run so far.
    fn wall(&self) -> f64 {
        self.wall_before + self.started.elapsed().as_secs_f64()
    }
}

/// Seed of the dropout masks of update `step`.
fn step_seed(seed: u64, step: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(step as u64)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// Trains `config` into `options.run_dir`. See the module documentation.
///
/// Everything that can be checked is checked before the run directory is created or touched: the
/// config, the data, the tokenizer. The directory is then locked ([`RunLock`]) for the whole run, so a
/// second process on the same directory fails at once naming this one.
pub fn train(
    config: &ExperimentConfig,
    options: &TrainOptions,
) -> Result<TrainSummary, crate::error::TrainError> {
    let started = Instant::now();
    config.validate()?;
    let run = RunDir::new(&options.run_dir);
    let resuming = resuming(&run, options.start)?;
    let (teacher, teacher_tokenizer) = match Teacher::load(config, &options.device)? {
        Some((teacher, tokenizer)) => (Some(teacher), Some(tokenizer)),
        None => (None, None),
    };
    let data = RunData::load(config, &run, resuming, teacher_tokenizer)?;

    std::fs::create_dir_all(&run.root).at(run.root.display())?;
    let _lock = RunLock::acquire(&run.root)?;
    if run.checkpoint().exists() != resuming {
        return Err(format!(
            "{}: another process changed the run directory while this one started",
            run.root.display()
        )
        .into());
    }
    let stale = seqls_data::read::remove_stale_temporaries(&run.root, None);
    if stale > 0 {
        eprintln!(
            "removed {stale} temporary files left in {} by a killed process",
            run.root.display()
        );
    }
    let saved = if resuming {
        Some(saved_checkpoint(config, &run)?)
    } else {
        // A run killed before its first checkpoint left these behind; they belong to no run now.
        for stale in [run.log(), run.metrics(), run.best_model(), run.timing()] {
            if stale.exists() {
                std::fs::remove_file(&stale).at(stale.display())?;
            }
        }
        data.tokenizer.save(&run.tokenizer())?;
        None
    };
    write_text(&run.config(), &config.to_toml())?;
    data.describe(config);

    let (mut trainer, model) = Trainer::new(config, options, run, data, teacher, saved, started)?;
    let model = trainer.epochs(model)?;
    trainer.finish(model)
}

/// Whether `train` continues the run's checkpoint, as `start` asks and the directory allows.
fn resuming(run: &RunDir, start: Start) -> Result<bool, crate::error::TrainError> {
    if run.root.exists() && !run.root.is_dir() {
        return Err(format!(
            "{}: is a file, not a run directory: choose another --run-dir",
            run.root.display()
        )
        .into());
    }
    match (start, run.checkpoint().exists()) {
        (Start::Fresh, true) => Err(format!(
            "{} already holds a checkpoint: pass --resume to continue it, or choose another --run-dir",
            run.root.display()
        )
        .into()),
        (Start::Resume, false) => Err(format!(
            "{}: no checkpoint to resume (use --resume-or-start to start a new run when there is none)",
            run.checkpoint().display()
        )
        .into()),
        (_, has) => Ok(has),
    }
}

/// The checkpoint to resume, `(state, model bytes, optimiser bytes)`, after checking that no setting
/// that changes results differs from the run's `config.toml`; the log is cut back to the checkpoint.
fn saved_checkpoint(
    config: &ExperimentConfig,
    run: &RunDir,
) -> Result<(TrainState, Vec<u8>, Vec<u8>), crate::error::TrainError> {
    let saved = ExperimentConfig::load(&run.config())?;
    let changed = changed_settings(&saved, config);
    if !changed.is_empty() {
        return Err(format!(
            "{}: these settings differ from the run being resumed and would change its results:\n  {}\n(only {} may change on resume; train into a new --run-dir instead)",
            run.config().display(),
            changed.join("\n  "),
            SAFE_TO_CHANGE_ON_RESUME.join(", ")
        )
        .into());
    }
    let checkpoint = checkpoint::load(&run.checkpoint())?;
    truncate_log(&run.log(), &checkpoint.0)?;
    Ok(checkpoint)
}

/// The corpus of a run, encoded with its tokenizer.
struct RunData {
    tokenizer: SubwordTokenizer,
    train: seqls_data::EncodedCorpus,
    valid: seqls_data::EncodedCorpus,
    /// The validation references (detokenised text), by pair index.
    valid_refs: Vec<String>,
    /// Training pairs skipped because a side is empty.
    skipped_empty: usize,
}

impl RunData {
    /// Reads the training and validation splits and encodes them with the run's tokenizer: the saved
    /// one when resuming, else the teacher's, else one trained on the training split.
    fn load(
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
        let train = encode_pairs(&tokenizer, &train_text.pairs, Some(config.data.max_len))?;
        let valid = encode_pairs(
            &tokenizer,
            &valid_text.pairs,
            Some(config.model.max_len - 2),
        )?;
        if train.examples.is_empty() {
            return Err("the training split has no usable pairs".into());
        }
        if valid.examples.is_empty() {
            return Err("the validation split has no usable pairs".into());
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
    fn describe(&self, config: &ExperimentConfig) {
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

/// Why a training ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Epochs,
    Steps,
    /// `train.max_time` reached.
    Time,
}

impl Stop {
    fn as_str(self) -> &'static str {
        match self {
            Stop::Epochs => "epochs",
            Stop::Steps => "steps",
            Stop::Time => "time",
        }
    }
}

/// The losses of the updates since the last `train` log line.
struct LogWindow {
    loss: f64,
    nll: f64,
    tokens: usize,
    started: Instant,
}

impl LogWindow {
    fn new() -> Self {
        LogWindow {
            loss: 0.0,
            nll: 0.0,
            tokens: 0,
            started: Instant::now(),
        }
    }
}

/// A training in progress: everything but the model, which flows through [`Trainer::epochs`] (an
/// update consumes the weights and returns the new ones).
struct Trainer<'a> {
    config: &'a ExperimentConfig,
    options: &'a TrainOptions,
    run: RunDir,
    data: RunData,
    teacher: Option<Teacher>,
    /// The training device (with autodiff).
    device: Device,
    optimizer: ModuleOptimizer,
    state: TrainState,
    clock: Clock,
    /// How long the last validation took (seconds): the time limit keeps room for the final one.
    validation_cost: f64,
    /// Whether this invocation changed anything (a resumed finished run changes nothing).
    changed: bool,
    stopped_by: Stop,
}

impl<'a> Trainer<'a> {
    /// A new model and optimiser seeded by `train.seed`, or the ones of the `saved` checkpoint.
    fn new(
        config: &'a ExperimentConfig,
        options: &'a TrainOptions,
        run: RunDir,
        data: RunData,
        teacher: Option<Teacher>,
        saved: Option<(TrainState, Vec<u8>, Vec<u8>)>,
        started: Instant,
    ) -> Result<(Trainer<'a>, Transformer), crate::error::TrainError> {
        let t = &config.train;
        let device = options.device.clone().autodiff();
        device.seed(t.seed);
        let mut model = config.model.init(data.tokenizer.vocab_size(), &device);
        let mut optimizer = crate::adam::optimizer(t, &device);
        let mut state = TrainState {
            step: 0,
            epoch: 0,
            batch_in_epoch: 0,
            best_valid_nll: None,
            best_step: None,
            target_tokens: 0,
            log_lines: Some(0),
            last_valid: None,
        };
        let mut clock = Clock {
            train_seconds: 0.0,
            wall_before: 0.0,
            started,
        };
        if let Some((saved, model_bytes, optim_bytes)) = saved {
            let origin = format!("{} (model section)", run.checkpoint().display());
            model = load_weights(model, model_bytes, &origin)?;
            optimizer = optimizer
                .from_bytes(burn::tensor::Bytes::from_bytes_vec(optim_bytes))
                .at(format!(
                    "{} (optimiser section)",
                    run.checkpoint().display()
                ))?;
            eprintln!(
                "resuming at update {} (epoch {}, batch {})",
                saved.step,
                saved.epoch + 1,
                saved.batch_in_epoch
            );
            let timing = std::fs::read_to_string(run.timing())
                .ok()
                .and_then(|t| serde_json::from_str::<Timing>(&t).ok())
                .unwrap_or_default();
            clock.train_seconds = timing.train_seconds;
            clock.wall_before = timing.wall_seconds;
            state = saved;
        }
        let trainer = Trainer {
            config,
            options,
            run,
            data,
            teacher,
            device,
            optimizer,
            state,
            clock,
            validation_cost: 0.0,
            changed: false,
            stopped_by: Stop::Epochs,
        };
        Ok((trainer, model))
    }

    /// `train.max_steps`, with 0 as no limit.
    fn max_steps(&self) -> usize {
        match self.config.train.max_steps {
            0 => usize::MAX,
            n => n,
        }
    }

    /// Epoch after epoch until `train.max_epochs`, `train.max_steps` or `train.max_time`; each
    /// finished epoch is validated, its weights kept and a checkpoint written.
    fn epochs(&mut self, mut model: Transformer) -> Result<Transformer, crate::error::TrainError> {
        let max_epochs = self.config.train.max_epochs;
        while self.state.epoch < max_epochs && self.state.step < self.max_steps() {
            let finished;
            (model, finished) = self.epoch(model)?;
            if !finished {
                return Ok(model);
            }
            self.state.epoch += 1;
            self.state.batch_in_epoch = 0;
            self.validate(&model, self.state.epoch, self.config.train.valid_bleu)?;
            self.keep_weights(&model)?;
            self.save_checkpoint(&model)?;
            self.changed = true;
        }
        if self.state.step >= self.max_steps() && self.state.epoch < max_epochs {
            self.stopped_by = Stop::Steps;
        }
        Ok(model)
    }

    /// The rest of the current epoch, from `state.batch_in_epoch`; `false` when a step or time limit
    /// stopped it first.
    fn epoch(
        &mut self,
        mut model: Transformer,
    ) -> Result<(Transformer, bool), crate::error::TrainError> {
        let t = &self.config.train;
        let plan = plan_batches(
            &self.data.train.examples,
            self.config.data.max_tokens,
            Some((t.seed, self.state.epoch as u64)),
        );
        let bar = if self.options.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(plan.len() as u64)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} batches {msg} ETA {eta}",
            )
            // Cannot fail: the progress template is a constant, checked by every training test.
            .expect("template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", self.state.epoch + 1, t.max_epochs));
        bar.set_position(self.state.batch_in_epoch as u64);
        let mut window = LogWindow::new();
        while self.state.batch_in_epoch < plan.len() {
            if self.state.step >= self.max_steps() {
                self.stopped_by = Stop::Steps;
                return Ok((model, false));
            }
            if self.time_is_up() {
                self.stopped_by = Stop::Time;
                return Ok((model, false));
            }
            let batch = make_batch(&self.data.train.examples, &plan[self.state.batch_in_epoch]);
            model = self.step(model, &batch, &mut window, &bar)?;
        }
        bar.finish_and_clear();
        Ok((model, true))
    }

    /// One update on `batch`, its `train` log line every `train.log_every` updates, a validation
    /// every `train.valid_every` and a checkpoint every `train.checkpoint_every`.
    fn step(
        &mut self,
        model: Transformer,
        batch: &Batch,
        window: &mut LogWindow,
        bar: &ProgressBar,
    ) -> Result<Transformer, crate::error::TrainError> {
        let t = &self.config.train;
        let started = Instant::now();
        let lr = learning_rate(
            t.schedule,
            t.lr,
            t.warmup_steps,
            t.max_steps,
            self.state.step + 1,
        );
        let (model, outcome) = update(
            model,
            self.teacher.as_ref(),
            &mut self.optimizer,
            batch,
            t,
            lr,
            step_seed(t.seed, self.state.step),
            self.options.threads,
            &self.device,
        );
        let StepOutcome {
            loss_sum,
            nll_sum,
            n_tokens,
        } = outcome;
        if !loss_sum.is_finite() {
            bar.abandon();
            return Err(format!(
                "non-finite loss ({loss_sum}) at update {}: training stopped; the last good checkpoint is {}",
                self.state.step + 1,
                self.run.checkpoint().display()
            )
            .into());
        }
        let state = &mut self.state;
        state.step += 1;
        state.batch_in_epoch += 1;
        state.target_tokens += n_tokens as u64;
        self.clock.train_seconds += started.elapsed().as_secs_f64();
        window.loss += loss_sum;
        window.nll += nll_sum;
        window.tokens += n_tokens;
        bar.inc(1);
        if state.step.is_multiple_of(t.log_every.max(1)) {
            let n = window.tokens.max(1) as f64;
            let tokens_per_sec =
                window.tokens as f64 / window.started.elapsed().as_secs_f64().max(1e-9);
            let (loss, nll) = (window.loss / n, window.nll / n);
            bar.set_message(format!(
                "loss {loss:.3} nll {nll:.3} {tokens_per_sec:.0} tok/s"
            ));
            let (step, epoch) = (state.step, state.epoch + 1);
            append_log(
                &self.run.log(),
                &LogLine::Train {
                    step,
                    epoch,
                    lr,
                    loss,
                    nll,
                    tokens_per_sec,
                },
                state,
            )?;
            if self.options.quiet {
                eprintln!(
                    "train | epoch {epoch} | update {step} | lr {lr:.2e} | loss {loss:.4} | nll {nll:.4} | {tokens_per_sec:.0} tok/s"
                );
            }
            *window = LogWindow::new();
        }
        self.changed = true;
        if t.valid_every > 0 && self.state.step.is_multiple_of(t.valid_every) {
            self.validate(&model, self.state.epoch + 1, false)?;
        }
        if self.state.step.is_multiple_of(t.checkpoint_every.max(1)) {
            self.save_checkpoint(&model)?;
        }
        Ok(model)
    }

    /// Whether `train.max_time` leaves no room for another update and the final validation.
    fn time_is_up(&self) -> bool {
        self.config
            .train
            .max_time
            .is_some_and(|limit| self.clock.wall() + self.validation_cost >= limit.seconds())
    }

    /// Validates, logs as epoch `epoch` (1-based), and keeps the best weights.
    fn validate(
        &mut self,
        model: &Transformer,
        epoch: usize,
        with_bleu: bool,
    ) -> Result<ValidMetrics, crate::error::TrainError> {
        let validation_started = Instant::now();
        let eval_model = model.valid();
        let inner = self.device.clone().inner();
        let metrics = validate(&eval_model, &self.data.valid.examples, self.config, &inner);
        let bleu = if with_bleu {
            Some(greedy_bleu(
                &eval_model,
                &self.data.tokenizer,
                &self.data.valid.examples,
                &self.data.valid_refs,
                &inner,
                self.options.threads,
            )?)
        } else {
            None
        };
        let state = &mut self.state;
        eprintln!(
            "valid | epoch {epoch} | update {} | loss {:.4} | nll {:.4} | ppl {:.2} | acc {:.2}%{}",
            state.step,
            metrics.smoothed_loss,
            metrics.nll,
            metrics.perplexity,
            100.0 * metrics.accuracy,
            bleu.map(|b| format!(" | greedy BLEU {b:.2}"))
                .unwrap_or_default()
        );
        append_log(
            &self.run.log(),
            &LogLine::Valid {
                step: state.step,
                epoch,
                metrics: metrics.clone(),
                greedy_bleu: bleu,
                train_seconds: self.clock.train_seconds,
                wall_seconds: self.clock.wall(),
            },
            state,
        )?;
        if state.best_valid_nll.is_none_or(|b| metrics.nll < b) {
            state.best_valid_nll = Some(metrics.nll);
            state.best_step = Some(state.step);
            seqls_data::read::write_atomic(&self.run.best_model(), &weights_bytes(&eval_model)?)?;
        }
        state.last_valid = Some((state.step, metrics.clone()));
        self.validation_cost = validation_started.elapsed().as_secs_f64();
        Ok(metrics)
    }

    /// Keeps the weights as `update-<step>.bpk` (the last `train.keep_last` of them).
    fn keep_weights(&self, model: &Transformer) -> Result<(), crate::error::TrainError> {
        let keep = self.config.train.keep_last;
        if keep == 0 {
            return Ok(());
        }
        write_atomic_bytes(
            &self.run.kept_weights(self.state.step),
            &weights_bytes(&model.valid())?,
        )?;
        for (_, old) in self.run.kept().into_iter().rev().skip(keep) {
            std::fs::remove_file(&old).at(old.display())?;
        }
        Ok(())
    }

    /// Writes `checkpoint.bin` and `timing.json`.
    fn save_checkpoint(&self, model: &Transformer) -> Result<(), crate::error::TrainError> {
        let (weights, optim) = checkpoint_bytes(model, &self.optimizer)?;
        checkpoint::save(&self.run.checkpoint(), &self.state, &weights, &optim)
            .at(self.run.checkpoint().display())?;
        let timing = Timing {
            step: self.state.step,
            train_seconds: self.clock.train_seconds,
            wall_seconds: self.clock.wall(),
        };
        write_text(&self.run.timing(), &serde_json::to_string(&timing)?)?;
        Ok(())
    }

    /// After the last update: the final validation (where the last epoch did not end with one), the
    /// average of the last `train.average_last` kept weights, the checkpoint, and `metrics.json`.
    fn finish(mut self, model: Transformer) -> Result<TrainSummary, crate::error::TrainError> {
        let t = &self.config.train;
        if self.state.last_valid.as_ref().map(|v| v.0) != Some(self.state.step) {
            self.validate(&model, self.state.epoch + 1, false)?;
            self.keep_weights(&model)?;
            self.changed = true;
        }
        if self.stopped_by == Stop::Time {
            eprintln!(
                "stopped by train.max_time ({}) after {:.0} s of wall-clock time, at update {}",
                t.max_time.map(|m| m.to_string()).unwrap_or_default(),
                self.clock.wall(),
                self.state.step
            );
        }
        if t.average_last > 0 && self.changed {
            let kept = self.run.kept();
            let last: Vec<PathBuf> = kept
                .iter()
                .rev()
                .take(t.average_last)
                .rev()
                .map(|(_, p)| p.clone())
                .collect();
            write_atomic_bytes(&self.run.average_model(), &average_weights(&last)?)?;
            eprintln!(
                "averaged the weights of {} checkpoints into {}",
                last.len(),
                self.run.average_model().display()
            );
        }
        if self.changed {
            self.save_checkpoint(&model)?;
        }
        let summary = TrainSummary {
            steps: self.state.step,
            epochs_completed: self.state.epoch,
            best_valid_nll: self.state.best_valid_nll,
            best_step: self.state.best_step,
            final_valid: self.state.last_valid.as_ref().map(|v| v.1.clone()),
            train_seconds: self.clock.train_seconds,
            wall_seconds: self.clock.wall(),
            stopped_by: self.stopped_by.as_str().to_string(),
            target_tokens_per_sec: self.state.target_tokens as f64
                / self.clock.train_seconds.max(1e-9),
            threads: self.options.threads,
            train_pairs: self.data.train.examples.len(),
            filtered_long: self.data.train.filtered_long,
            skipped_empty: self.data.skipped_empty,
        };
        write_text(
            &self.run.metrics(),
            &serde_json::to_string_pretty(&summary)?,
        )?;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seqls_model::ModelConfig;

    /// Random gradients for every parameter of `model`, on the inner device.
    struct RandomGrads {
        grads: GradientsParams,
        scale: f64,
    }

    impl ModuleVisitor for RandomGrads {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let g = param
                .val()
                .inner()
                .random_like(burn::tensor::Distribution::Normal(0.0, self.scale));
            self.grads.register(param.id, g);
        }
    }

    fn values(model: &Transformer, grads: &GradientsParams) -> Vec<f32> {
        struct Collect<'a>(&'a GradientsParams, Vec<f32>);
        impl ModuleVisitor for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                self.1.extend(f32_vec(self.0.get::<D>(param.id).unwrap()));
            }
        }
        let mut collect = Collect(grads, vec![]);
        model.visit(&mut collect);
        collect.1
    }

    /// The host sum of the shards' gradients equals burn's accumulation bit for bit, and the host
    /// clipping equals burn's to float rounding, whether the norm is above the limit or not.
    #[test]
    fn host_sum_and_clipping_equal_the_tensor_path() {
        let device = Device::flex().autodiff();
        device.seed(4);
        let config = ModelConfig {
            d_model: 16,
            heads: 2,
            encoder_layers: 1,
            decoder_layers: 1,
            d_ff: 24,
            ..ModelConfig::default()
        };
        let model = config.init(37, &device);
        let shards = || {
            (0..3)
                .map(|_| {
                    let mut random = RandomGrads {
                        grads: GradientsParams::new(),
                        scale: 0.05,
                    };
                    model.visit(&mut random);
                    random.grads
                })
                .collect::<Vec<_>>()
        };
        let sets = shards();
        let copy = |sets: &[GradientsParams]| {
            sets.iter()
                .map(|g| {
                    let mut out = GradientsParams::new();
                    struct Copy<'a>(&'a GradientsParams, &'a mut GradientsParams);
                    impl ModuleVisitor for Copy<'_> {
                        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                            let g = self.0.get::<D>(param.id).unwrap();
                            self.1.register(param.id, g);
                        }
                    }
                    model.visit(&mut Copy(g, &mut out));
                    out
                })
                .collect::<Vec<_>>()
        };
        let unclipped_tensor = summed_and_clipped(&model, copy(&sets), 0.0, false);
        let unclipped_host = summed_and_clipped(&model, copy(&sets), 0.0, true);
        let want = values(&model, &unclipped_tensor);
        assert_eq!(values(&model, &unclipped_host), want);
        let norm = want
            .iter()
            .map(|&g| (g as f64) * (g as f64))
            .sum::<f64>()
            .sqrt();
        for max_norm in [norm / 3.0, norm * 2.0] {
            let tensor = values(
                &model,
                &summed_and_clipped(&model, copy(&sets), max_norm, false),
            );
            let host = values(
                &model,
                &summed_and_clipped(&model, copy(&sets), max_norm, true),
            );
            let worst = tensor
                .iter()
                .zip(&host)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-6, "max_norm {max_norm}: {worst}");
            let clipped = host
                .iter()
                .map(|&g| (g as f64) * (g as f64))
                .sum::<f64>()
                .sqrt();
            assert!(
                (clipped - norm.min(max_norm)).abs() < 1e-4 * norm,
                "{clipped}"
            );
        }
    }
}
