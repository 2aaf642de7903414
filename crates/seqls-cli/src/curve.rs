//! `seqls curve`: time to BLEU from a run's kept weights and its own log.

use clap::Args;
use seqls_run::RunDir;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct CurveArgs {
    /// Run directory trained with train.keep_last > 0
    run: PathBuf,
    /// Split to decode: train, val, test, or a Multi30k test set such as test_2017_flickr
    #[arg(long, default_value = "test")]
    split: String,
    #[command(flatten)]
    search: crate::args::SearchArgs,
    #[command(flatten)]
    device: crate::DeviceArgs,
}

/// Decodes the split with each kept checkpoint (and the average) and writes
/// `RUN/curve-<split>-beam<K>.{json,md,png,svg}`: BLEU against wall-clock minutes of training.
pub fn run(args: CurveArgs) -> anyhow::Result<()> {
    let (device, threads) = args.device.resolve()?;
    let run = RunDir::new(&args.run);
    let (config, search) = args.search.for_run(&run)?;
    let split = config.data.resolve_split(&args.split)?;
    let curve = seqls_sweep::per_run::curve::time_to_bleu(&run, &split, &search, &device, threads)?;
    let stem = run
        .root
        .join(format!("curve-{split}-beam{}", search.beam_size));
    curve.write(&stem)?;
    print!("{}", curve.markdown());
    println!("wrote {}.{{json,md,png,svg}}", stem.display());
    Ok(())
}
