//! `seqls sweep` and `seqls report`: train every α, evaluate each at every beam size, and write
//! `report.md`, `report.json`, `table.csv` and `figures/` in the sweep directory (see
//! [`seqls_sweep::report`]).
//!
//! The jobs and how they run are [`seqls_sweep::Sweep`]; this file maps flags onto the config.

use crate::train::ConfigArgs;
use clap::Args;
use seqls_sweep::Sweep;
use seqls_sweep::write_report;
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
    /// The beam size at which the report compares α values (default: the config's
    /// sweep.compare_beam, 4)
    #[arg(long)]
    compare_beam: Option<usize>,
    /// Comma-separated seeds (default: the config's sweep.seeds)
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
    /// Comma-separated splits to evaluate on, e.g. test_2016_flickr,test_2017_flickr (default: the
    /// config's sweep.test_splits)
    #[arg(long, value_delimiter = ',')]
    test_splits: Option<Vec<String>>,
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
    if let Some(k) = args.compare_beam {
        config.sweep.compare_beam = k;
    }
    if let Some(s) = args.seeds {
        config.sweep.seeds = s;
    }
    if let Some(t) = args.test_splits {
        config.sweep.test_splits = t;
    }
    if let Some(e) = args.max_epochs {
        config.train.max_epochs = e;
    }
    if let Some(m) = args.max_time {
        config.train.max_time = Some(m);
    }
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("sweeps").join(&config.name));
    let sweep = Sweep::create(&out, config)?;
    if args.plan {
        for line in sweep.plan() {
            println!("{line}");
        }
        return Ok(());
    }
    sweep.run(&device, threads)?;
    let report = write_report(&out, &device)?;
    println!("{report}");
    println!("wrote {}", out.join("report.md").display());
    Ok(())
}

pub fn run_report(args: ReportArgs) -> anyhow::Result<()> {
    let (device, _) = args.device.resolve()?;
    println!("{}", write_report(&args.dir, &device)?);
    Ok(())
}
