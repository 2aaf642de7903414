//! `seqls train`.

use crate::args::DeviceArgs;
use anyhow::Context;
use clap::Args;
use seqls_run::ExperimentConfig;
use seqls_train::{Start, TrainOptions};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub config: crate::args::ConfigArgs,
    /// Label-smoothing weight α in [0, 1) (config: train.alpha, default 0.1)
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Smoothed target, a seqls_model::SmoothingVariant: uniform (α/K on every class), fairseq
    /// (α/(K−1) on every class but the reference) or annotated (α/(K−2), nothing on <pad>) (config:
    /// train.ls_variant, default uniform)
    #[arg(long)]
    pub ls_variant: Option<seqls_model::SmoothingVariant>,
    /// Loss normaliser (config: train.normalize, default token)
    #[arg(long, value_enum)]
    pub normalize: Option<crate::args::LossNormalizer>,
    /// Run directory (default: runs/<config name>-a<alpha>)
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Epochs (config: train.max_epochs)
    #[arg(long)]
    pub max_epochs: Option<usize>,
    /// Stop after this many updates (0 = no limit)
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Wall-clock budget of the run, e.g. 12m, 1h30m (config: train.max_time): training validates,
    /// checkpoints and stops once it is reached (with room kept for that last validation)
    #[arg(long)]
    pub max_time: Option<seqls_run::WallClock>,
    /// Keep the weights of the last N epochs as update-<step>.bpk (config: train.keep_last)
    #[arg(long)]
    pub keep_last: Option<usize>,
    /// At the end, average the last N kept weights into model-average.bpk (config: train.average_last)
    #[arg(long)]
    pub average_last: Option<usize>,
    /// Seed of initialisation, dropout and batch order
    #[arg(long)]
    pub seed: Option<u64>,
    /// Word-level knowledge distillation from this trained run (config: train.teacher): the teacher
    /// (frozen, dropout off) scores every batch, and the student, which uses the teacher's tokenizer
    /// (so data.vocab_size must equal the teacher's), minimises
    /// (1 − β)·LS-CE(reference) + β·T²·KL(p_teacher^T ‖ p_student^T) per non-pad target token
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// Softmax temperature T of the distillation term, > 0 (config: train.kd_temperature, default 1)
    #[arg(long)]
    pub kd_temperature: Option<f64>,
    /// Weight β of the distillation term, in [0, 1] (config: train.kd_weight, default 0.5)
    #[arg(long)]
    pub kd_weight: Option<f64>,
    /// Split each batch into this many shards trained in parallel (config: train.shards, default 2;
    /// results depend on it, not on --threads)
    #[arg(long)]
    pub shards: Option<usize>,
    /// Continue from the run directory's last checkpoint (an error when there is none); settings that
    /// change results must equal the run's config.toml (--help lists those that may differ)
    #[arg(long, conflicts_with = "resume_or_start")]
    pub resume: bool,
    /// Continue the run directory's checkpoint when there is one, else start a new run
    #[arg(long)]
    pub resume_or_start: bool,
    /// No progress bars, log lines only
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub device: crate::DeviceArgs,
}

/// The default run directory of a config and α.
pub fn default_run_dir(config: &ExperimentConfig) -> PathBuf {
    PathBuf::from("runs").join(format!("{}-a{}", config.name, config.train.alpha))
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    // The training sets its own precision (`train.precision`, which `--precision` overrides).
    let device_args = DeviceArgs {
        precision: None,
        ..args.device.clone()
    };
    let (device, threads) = device_args.resolve()?;
    let mut config = args.config.load()?;
    let t = &mut config.train;
    if let Some(a) = args.alpha {
        t.alpha = a;
    }
    if let Some(v) = args.ls_variant {
        t.ls_variant = v;
    }
    if let Some(n) = args.normalize {
        t.normalize = n.into();
    }
    if let Some(e) = args.max_epochs {
        t.max_epochs = e;
    }
    if let Some(s) = args.max_steps {
        t.max_steps = s;
    }
    if let Some(s) = args.seed {
        t.seed = s;
    }
    if let Some(dir) = &args.teacher {
        t.teacher = Some(dir.clone());
    }
    if let Some(x) = args.kd_temperature {
        t.kd_temperature = x;
    }
    if let Some(x) = args.kd_weight {
        t.kd_weight = x;
    }
    if let Some(m) = args.max_time {
        t.max_time = Some(m);
    }
    if let Some(k) = args.keep_last {
        t.keep_last = k;
    }
    if let Some(a) = args.average_last {
        t.average_last = a;
    }
    if let Some(s) = args.shards {
        t.shards = s;
    }
    if let Some(p) = args.device.precision {
        t.precision = p;
    }
    config
        .validate()
        .context("invalid setting given on the command line")?;
    let run_dir = args.run_dir.unwrap_or_else(|| default_run_dir(&config));
    let options = TrainOptions {
        run_dir: run_dir.clone(),
        start: if args.resume {
            Start::Resume
        } else if args.resume_or_start {
            Start::ResumeOrStart
        } else {
            Start::Fresh
        },
        quiet: args.quiet,
        device,
        threads,
    };
    let summary = seqls_train::train(&config, &options)?;
    if let Some(v) = &summary.final_valid {
        println!(
            "trained {} updates in {:.0} s ({:.0} s wall-clock, stopped by {}; {:.0} target tokens/s, {} threads): validation NLL {:.4}, perplexity {:.2}, token accuracy {:.2}% → {}",
            summary.steps,
            summary.train_seconds,
            summary.wall_seconds,
            summary.stopped_by,
            summary.target_tokens_per_sec,
            threads,
            v.nll,
            v.perplexity,
            100.0 * v.accuracy,
            run_dir.display()
        );
    }
    Ok(())
}

/// The long help of `--resume`, with the settings that may change on resume
/// ([`seqls_train::SAFE_TO_CHANGE_ON_RESUME`], the one list the error message and the docs also use).
pub fn resume_help() -> String {
    format!(
        "Continue from the run directory's last checkpoint (an error when there is none). Settings that \
         change results must equal the run's config.toml; only these may differ: {}",
        seqls_train::SAFE_TO_CHANGE_ON_RESUME.join(", ")
    )
}
