//! `seqls eval`: decode a split, then BLEU, chrF, length ratio, inference calibration and
//! teacher-forced calibration (before and after temperature scaling) into `eval-<split>-beam<K>.json`,
//! with reliability diagrams. The work is [`seqls_sweep::per_run::evaluate`].

use anyhow::bail;
use clap::{Args, ValueEnum};
use seqls_run::RunDir;
use seqls_sweep::evaluate;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OutputFormat {
    /// A short table
    Text,
    /// The whole report as JSON on stdout
    Json,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Run directory written by `seqls train`
    #[arg(long)]
    model: PathBuf,
    /// Split to evaluate: train, val, test, or a Multi30k test set in the data directory (test_2016_flickr, test_2017_flickr, test_2017_mscoco, test_2018_flickr; test = test_2016_flickr)
    #[arg(long, default_value = "test")]
    split: String,
    #[command(flatten)]
    search: crate::args::SearchArgs,
    /// Equal-width bins of the calibration metrics (1–10000)
    #[arg(long, default_value_t = seqls_eval::calibration::DEFAULT_BINS as u32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    bins: u32,
    /// Output file (default: RUN/eval-<split>-beam<K>.json)
    #[arg(long)]
    output: Option<PathBuf>,
    /// Overwrite a finished evaluation
    #[arg(long, conflicts_with = "skip_finished")]
    force: bool,
    /// Do nothing (and succeed) when the output exists: for job scripts that may run twice
    #[arg(long)]
    skip_finished: bool,
    /// What to print
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    #[command(flatten)]
    device: crate::DeviceArgs,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let (device, threads) = args.device.resolve()?;
    let run = RunDir::new(&args.model);
    let (config, search) = args.search.for_run(&run)?;
    let split = config.data.resolve_split(&args.split)?;
    let output = args
        .output
        .unwrap_or_else(|| run.eval_file(&split, search.beam_size));
    if output.exists() && args.skip_finished {
        eprintln!("{} exists: skipped", output.display());
        return Ok(());
    }
    if output.exists() && !args.force {
        bail!(
            "{} exists: this evaluation is finished (pass --force to redo it)",
            output.display()
        );
    }
    let r = evaluate(
        &run,
        &split,
        &search,
        args.bins as usize,
        &output,
        &device,
        threads,
    )?;
    if let OutputFormat::Json = args.format {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let tf = &r.teacher_forced.with_eos;
    let ts = &r.teacher_forced_at_fitted_temperature.with_eos;
    println!("{}\n{}", r.bleu.line, r.bleu.signature);
    println!(
        "chrF2 {:.2} | length ratio {:.3} | {:.1} sentences/s (beam {})",
        r.chrf, r.length_ratio, r.sentences_per_sec, r.search.beam_size
    );
    println!(
        "teacher-forced  NLL {:.4} | acc {:.2}% | conf {:.2}% | ECE {:.4} | MCE {:.4} | adaptive ECE {:.4} | Brier {:.4}",
        r.teacher_forced.nll,
        100.0 * tf.accuracy,
        100.0 * tf.mean_confidence,
        tf.ece,
        tf.mce,
        tf.adaptive_ece,
        tf.brier_top
    );
    println!(
        "at T* = {:.4}  NLL {:.4} | ECE {:.4} | MCE {:.4} | adaptive ECE {:.4}",
        r.fitted_temperature,
        r.teacher_forced_at_fitted_temperature.nll,
        ts.ece,
        ts.mce,
        ts.adaptive_ece
    );
    let inf = &r.inference;
    println!(
        "inference (beam {}) acc {:.2}% | conf {:.2}% | ECE {:.4}",
        r.search.beam_size,
        100.0 * inf.accuracy,
        100.0 * inf.mean_confidence,
        inf.ece
    );
    if let Some(e) = &r.erasure {
        println!(
            "beyond the reference (val, teacher forced): H(q)/ln(K−1) {:.4} | KL(q ‖ uniform) {:.4} nats | top-5 mass of q {:.4} ({} tokens)",
            e.entropy_ratio, e.kl_from_uniform, e.top5_mass, e.tokens
        );
    }
    if let Some(o) = &r.oracle {
        println!(
            "oracle  mean |p − q| {:.4} | ECE vs true probabilities {:.4} ({} words)",
            o.mean_abs_gap, o.ece, o.tokens
        );
    }
    println!(
        "wrote {} (+ {}, {})",
        output.display(),
        r.hypotheses_file,
        r.figures.join(", ")
    );
    Ok(())
}
