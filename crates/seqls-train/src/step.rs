//! One update: the shards' forward passes, the label-smoothed (and, with a teacher, distilled) loss,
//! the backward passes, the summed and clipped gradients ([`crate::grads`]) and the Adam step.
//!
//! The objective of a batch is `Σ_rows Σ_t ℓ_t / D`, where `ℓ_t` is the smoothed loss of a non-pad
//! target token ([`seqls_model::loss`]) and `D` the batch's non-pad target tokens
//! (`train.normalize = "tokens"`) or rows (`"sentences"`). Each shard contributes its rows' sum over the
//! whole batch's `D`, so the shards' gradients add up to the batch's.

use crate::grads::summed_and_clipped;
use crate::teacher::Teacher;
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Device;
use seqls_data::Batch;
use seqls_data::tokenizer::PAD;
use seqls_model::tensors::{BatchTensors, on_cpu};
use seqls_model::{
    Distillation, HostOutput, Normalize, Smoothing, Transformer, distillation_objective,
    training_objective,
};
use seqls_run::TrainConfig;

/// What an update takes from `[train]`, resolved once per run.
#[derive(Debug, Clone, Copy)]
pub struct UpdateRule {
    /// The label-smoothed target (`train.alpha`, `train.ls_variant`).
    pub smoothing: Smoothing,
    /// The denominator `D` of the batch objective.
    pub normalize: Normalize,
    /// Row shards of a batch (`train.shards`).
    pub shards: usize,
    /// Maximum global L2 norm of the gradients (`train.clip_norm`; 0: no clipping).
    pub clip_norm: f64,
}

impl UpdateRule {
    pub fn of(t: &TrainConfig) -> UpdateRule {
        UpdateRule {
            smoothing: t.smoothing(),
            normalize: t.normalize,
            shards: t.shards,
            clip_norm: t.clip_norm,
        }
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
    smoothing: Smoothing,
    denominator: f64,
    dropout_seed: u64,
    device: &Device,
) -> ShardPass {
    let _masks = seqls_model::ops::dropout::seeded(step_seed(dropout_seed, index));
    let replica = model.clone().fork(device);
    let tensors = BatchTensors::new(shard, device);
    // The teacher runs on the inner device: no dropout, no graph; its logits are a constant.
    let teacher_logits = teacher.map(|teacher| {
        let plain = BatchTensors::new(shard, &device.clone().inner());
        let logits = teacher.model.forward(plain.src, plain.tgt_in, PAD).logits;
        Distillation {
            teacher_logits: logits,
            temperature: teacher.temperature,
            weight: teacher.weight,
        }
    });
    let (sums, objective, weight_gradient) = match output {
        Some(output) => {
            let hidden = replica.decoder_states(tensors.src, tensors.tgt_in, PAD);
            let host = output.objective(
                hidden,
                &shard.tgt_out,
                smoothing,
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
                smoothing,
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

/// One update on `batch` at learning rate `lr`: forward, label-smoothed loss, backward, global-norm
/// clipping, Adam step. `device` must be an autodiff device.
///
/// Data parallelism on the CPU (a burn-flex op gains little from a second thread at these sizes): the
/// batch's rows are split into `rule.shards` shards ([`Batch::split_rows`]), whose forward and backward
/// passes run as tasks of the global rayon pool (in turn on this thread when `threads` is 1); the shard
/// gradients are summed in shard order, so the result depends on `rule.shards` but not on `threads`. Dropout masks are a function of
/// `(dropout_seed, shard)`. A non-finite loss leaves the model unchanged (the caller stops).
#[allow(clippy::too_many_arguments)]
pub fn update(
    model: Transformer,
    teacher: Option<&Teacher>,
    optimizer: &mut ModuleOptimizer,
    batch: &Batch,
    rule: &UpdateRule,
    lr: f64,
    dropout_seed: u64,
    threads: usize,
    device: &Device,
) -> (Transformer, StepOutcome) {
    let denominator = match rule.normalize {
        Normalize::Tokens => batch.target_tokens().max(1),
        Normalize::Sentences => batch.rows,
    } as f64;
    let shards = batch.split_rows(rule.shards);
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
            rule.smoothing,
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
    let grads = summed_and_clipped(&model, shards, rule.clip_norm, on_host);
    (optimizer.step(lr, model, grads), outcome)
}

/// Seed of the dropout masks of update `step`.
pub(crate) fn step_seed(seed: u64, step: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(step as u64)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9)
}
