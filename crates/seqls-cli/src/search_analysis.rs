//! `seqls search-analysis`: beam search at many sizes and rankings against the model's scores and
//! against exact search, for one run on one split.

use anyhow::bail;
use clap::Args;
use seqls_decode::LengthPenalty;
use seqls_run::RunDir;
use seqls_sweep::per_run::search_analysis::{analyse, search_file};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct SearchAnalysisArgs {
    /// Run directory written by `seqls train`
    #[arg(long)]
    model: PathBuf,
    /// Split to analyse (as `seqls eval --split`)
    #[arg(long, default_value = "test")]
    split: String,
    /// Beam sizes (default: the run's [sweep.search], else 1,2,4,8,16,32,64)
    #[arg(long, value_delimiter = ',')]
    beams: Option<Vec<usize>>,
    /// Rankings of the finished hypotheses: none (Σ log p), power-A (÷ length^A), gnmt-A (default: none,power-1,gnmt-0.6)
    #[arg(long, value_delimiter = ',')]
    rankings: Option<Vec<LengthPenalty>>,
    /// Exact search on the first N sentences (0: none; default 1000)
    #[arg(long)]
    exact_sentences: Option<usize>,
    /// Most prefixes exact search scores per sentence (default 100000)
    #[arg(long)]
    max_expansions: Option<u64>,
    /// Exact search again with </s> forbidden before ⌈r · source tokens⌉ tokens (0: not run)
    #[arg(long, allow_negative_numbers = true)]
    min_len_ratio: Option<f64>,
    /// Beam size of the two controls, tuned length penalty and fitted temperature (0: not run; default 4)
    #[arg(long)]
    control_beam: Option<usize>,
    /// Do nothing (and succeed) when RUN/search-<split>.json exists: for job scripts that may run twice
    #[arg(long)]
    skip_finished: bool,
    #[command(flatten)]
    device: crate::DeviceArgs,
}

pub fn run(args: SearchAnalysisArgs) -> anyhow::Result<()> {
    let run = RunDir::new(&args.model);
    let config = seqls_run::ExperimentConfig::load(&run.config())?;
    let split = config.data.resolve_split(&args.split)?;
    let output = search_file(&run, &split);
    if output.exists() && args.skip_finished {
        eprintln!("{} exists: skipped", output.display());
        return Ok(());
    }
    let mut analysis = config.sweep.search.clone().unwrap_or_default();
    if let Some(beams) = args.beams {
        analysis.beams = beams;
    }
    if let Some(rankings) = args.rankings {
        analysis.rankings = rankings;
    }
    analysis.exact_sentences = args.exact_sentences.unwrap_or(analysis.exact_sentences);
    analysis.max_expansions = args.max_expansions.unwrap_or(analysis.max_expansions);
    analysis.min_len_ratio = args.min_len_ratio.unwrap_or(analysis.min_len_ratio);
    analysis.control_beam = args.control_beam.unwrap_or(analysis.control_beam);
    if let Err(e) = analysis.validate() {
        bail!(
            "{}",
            e.to_string()
                .replace("sweep.search.", "--")
                .replace('_', "-")
        );
    }
    let (device, threads) = args.device.resolve()?;
    let r = analyse(&run, &split, &analysis, &device, threads)?;
    println!("beam | ranking | BLEU | chrF | len ratio | empty | short | search errors");
    for p in &r.points {
        println!(
            "{} | {} | {:.2} | {:.2} | {:.3} | {:.3} | {:.3} | {}",
            p.beam,
            p.ranking.label(),
            p.bleu,
            p.chrf,
            p.length_ratio,
            p.empty,
            p.short,
            p.search_errors
                .map_or("–".to_string(), |e| format!("{e:.3}"))
        );
    }
    for e in r.exact.iter().chain(&r.exact_min_len) {
        println!(
            "exact search (first {} sentences, min-len ratio {}): {} proven, {} above the beams | BLEU {:.2} | len ratio {:.3} | empty {:.3} | {:.0} prefixes per sentence | {:.1} s",
            e.sentences,
            e.min_len_ratio,
            e.proven,
            e.improved,
            e.bleu,
            e.length_ratio,
            e.empty,
            e.mean_expansions,
            e.seconds
        );
    }
    if let Some(c) = &r.controls {
        println!(
            "controls at beam {}: BLEU {:.2} (len ratio {:.3}) | ranking tuned on validation {} ({:.2} there): {:.2} ({:.3}) | at T* = {:.3}: {:.2} ({:.3})",
            c.beam,
            c.default_bleu,
            c.default_length_ratio,
            c.tuned_ranking.label(),
            c.tuned_valid_bleu,
            c.tuned_bleu,
            c.tuned_length_ratio,
            c.fitted_temperature,
            c.fitted_bleu,
            c.fitted_length_ratio
        );
    }
    println!("wrote {}", output.display());
    Ok(())
}
