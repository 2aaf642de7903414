//! `seqls sweep` and `seqls report`: train every α, evaluate each at every beam size, and write
//! `report.md`, `report.json`, `table.csv` and `figures/` in the sweep directory (see
//! [`seqls_sweep::report`]).
//!
//! Layout: `SWEEP/a<α>-s<seed>/` is a run directory; its `eval-test-beam<K>.json` files are the
//! evaluations. Finished work (a run with `metrics.json`, an existing evaluation) is skipped;
//! interrupted training resumes from its checkpoint.

use crate::train::ConfigArgs;
use anyhow::Context;
use clap::Args;
use seqls_sweep::{evaluate, run_name, write_report};
use seqls_train::{RunDir, Start, TrainOptions};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct SweepArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Comma-separated α values (default: the config's sweep.alphas)
    #[arg(long, value_delimiter = ',')]
    alphas: Option<Vec<f64>>,
    /// Comma-separated beam sizes (default: the config's sweep.beams)
    #[arg(long, value_delimiter = ',')]
    beams: Option<Vec<usize>>,
    /// Comma-separated seeds
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
    /// Sweep directory (default: sweeps/<config name>)
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print one `seqls train` / `seqls eval` command per job instead of running them
    #[arg(long)]
    plan: bool,
    /// Epochs per α (overrides train.max_epochs)
    #[arg(long)]
    max_epochs: Option<usize>,
    /// Wall-clock budget of each training job, e.g. 12m (overrides train.max_time)
    #[arg(long)]
    max_time: Option<seqls_train::WallClock>,
    #[command(flatten)]
    device: crate::DeviceArgs,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Sweep directory
    dir: PathBuf,
    #[command(flatten)]
    device: crate::DeviceArgs,
}

pub fn run(args: SweepArgs) -> anyhow::Result<()> {
    let (device, threads) = args.device.resolve()?;
    let mut config = args.config.load()?;
    if let Some(a) = args.alphas {
        config.sweep.alphas = a;
    }
    if let Some(b) = args.beams {
        config.sweep.beams = b;
    }
    if let Some(s) = args.seeds {
        config.sweep.seeds = s;
    }
    if let Some(e) = args.max_epochs {
        config.train.max_epochs = e;
    }
    if let Some(m) = args.max_time {
        config.train.max_time = Some(m);
    }
    config.validate().map_err(anyhow::Error::msg)?;
    // The whole plan is checked before the first job runs.
    for &seed in &config.sweep.seeds {
        for &alpha in &config.sweep.alphas {
            let mut job = config.clone();
            job.train.alpha = alpha;
            job.train.seed = seed;
            job.validate()
                .map_err(|e| anyhow::anyhow!("sweep job α = {alpha}, seed {seed}: {e}"))?;
        }
    }
    if config.sweep.alphas.is_empty() || config.sweep.seeds.is_empty() {
        anyhow::bail!("the sweep has no α or no seed");
    }
    for &beam in &config.sweep.beams {
        seqls_decode::SearchConfig {
            beam_size: beam,
            nbest: 1,
            ..config.decode.clone()
        }
        .validate()
        .map_err(|e| anyhow::anyhow!("sweep beam {beam}: {e}"))?;
    }
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("sweeps").join(&config.name));
    std::fs::create_dir_all(&out).with_context(|| out.display().to_string())?;
    seqls_data::read::write_atomic(&out.join("sweep.toml"), config.to_toml().as_bytes())?;
    let sweep_config = out.join("sweep.toml");
    for &seed in &config.sweep.seeds {
        for &alpha in &config.sweep.alphas {
            let mut job = config.clone();
            job.train.alpha = alpha;
            job.train.seed = seed;
            let run = RunDir::new(out.join(run_name(alpha, seed)));
            if args.plan {
                println!(
                    "seqls train --config {} --alpha {alpha} --seed {seed} --run-dir {} --resume-or-start --quiet",
                    sweep_config.display(),
                    run.root.display()
                );
                for &beam in &config.sweep.beams {
                    println!(
                        "seqls eval --model {} --split test --beam {beam}",
                        run.root.display()
                    );
                }
                continue;
            }
            if !run.metrics().exists() {
                eprintln!(
                    "== training α = {alpha}, seed {seed} → {}",
                    run.root.display()
                );
                let options = TrainOptions {
                    run_dir: run.root.clone(),
                    start: Start::ResumeOrStart,
                    quiet: false,
                    device: device.clone(),
                    threads,
                };
                seqls_train::train(&job, &options).map_err(anyhow::Error::msg)?;
            }
            for &beam in &config.sweep.beams {
                let output = run.root.join(format!("eval-test-beam{beam}.json"));
                if output.exists() {
                    continue;
                }
                let search = seqls_decode::SearchConfig {
                    beam_size: beam,
                    nbest: 1,
                    ..job.decode.clone()
                };
                let r = evaluate(&run, "test", &search, 15, &output, &device, threads)?;
                eprintln!(
                    "   α = {alpha} beam {beam}: BLEU {:.2}, ECE {:.4}",
                    r.bleu.score, r.teacher_forced.with_eos.ece
                );
            }
        }
    }
    if !args.plan {
        let report = write_report(&out, &device)?;
        println!("{report}");
        println!("wrote {}", out.join("report.md").display());
    }
    Ok(())
}

pub fn run_report(args: ReportArgs) -> anyhow::Result<()> {
    let (device, _) = args.device.resolve()?;
    println!("{}", write_report(&args.dir, &device)?);
    Ok(())
}
