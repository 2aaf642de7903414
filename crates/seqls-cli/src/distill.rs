//! `seqls distill-data`: a teacher's translations of its training sources, for sequence-level
//! knowledge distillation (see [`seqls_sweep::per_run::distill_data`]).

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use seqls_run::RunDir;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct DistillDataArgs {
    /// Teacher run directory (its training split is translated)
    #[arg(long)]
    teacher: PathBuf,
    /// Output directory: train.src, train.tgt and distill.json (resumable)
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    search: crate::args::SearchArgs,
    /// No progress bar
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    device: crate::DeviceArgs,
}

pub fn run(args: DistillDataArgs) -> anyhow::Result<()> {
    let (device, threads) = args.device.resolve()?;
    let teacher = RunDir::new(&args.teacher);
    let (_, search) = args.search.for_run(&teacher)?;
    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} sentences, {per_sec}, ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let record = seqls_sweep::per_run::distill_data::distill_data(
        &teacher,
        &search,
        &args.out,
        &device,
        threads,
        |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    println!(
        "{} training sources translated by {} (beam {}; {} empty) → {}/train.src, train.tgt\ntrain a student on them with data.train = [\"{}/train.src\", \"{}/train.tgt\"]",
        record.sentences,
        record.teacher.display(),
        record.search.beam_size,
        record.empty_translations,
        args.out.display(),
        args.out.display(),
        args.out.display()
    );
    Ok(())
}
