//! `seqls bleu REF... -i HYP`: the sacrebleu command line for corpus BLEU, chrF and paired bootstrap.

use anyhow::bail;
use clap::Args;
use seqls_data::read::read_lines;
use seqls_eval::bleu::{BleuOptions, corpus_bleu, corpus_chrf, paired_bootstrap};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct BleuArgs {
    /// Reference files (several for multi-reference BLEU)
    #[arg(required = true)]
    refs: Vec<PathBuf>,
    /// Hypothesis file(s); two with --paired-bs (baseline first)
    #[arg(short = 'i', long = "input", required = true, num_args = 1..)]
    input: Vec<PathBuf>,
    /// Tokenizer: 13a, intl, char or none
    #[arg(long, default_value = "13a")]
    tokenize: String,
    /// Lowercase before scoring
    #[arg(long)]
    lowercase: bool,
    /// Smoothing: exp, floor, add-k or none
    #[arg(long, default_value = "exp")]
    smooth_method: String,
    /// Smoothing value (floor: 0.1, add-k: 1 by default)
    #[arg(long)]
    smooth_value: Option<f64>,
    /// Also print chrF
    #[arg(long)]
    chrf: bool,
    /// Paired bootstrap resampling between two systems (-i BASELINE SYSTEM)
    #[arg(long)]
    paired_bs: bool,
    /// Resamples for --paired-bs (1–1000000)
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    paired_bs_n: u32,
    /// text or json
    #[arg(long, default_value = "text")]
    format: String,
}

fn named<T>(r: Result<T, String>, file: &std::path::Path) -> anyhow::Result<T> {
    r.map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

pub fn run(args: BleuArgs) -> anyhow::Result<()> {
    let refs: Vec<Vec<String>> = args
        .refs
        .iter()
        .map(|p| read_lines(p))
        .collect::<Result<_, _>>()?;
    let hyps: Vec<Vec<String>> = args
        .input
        .iter()
        .map(|p| read_lines(p))
        .collect::<Result<_, _>>()?;
    let options = BleuOptions {
        tokenize: args.tokenize,
        lowercase: args.lowercase,
        smooth_method: args.smooth_method,
        smooth_value: args.smooth_value,
    };
    let json = match args.format.as_str() {
        "json" => true,
        "text" => false,
        other => bail!("unknown --format {other:?}: use text or json"),
    };
    if args.paired_bs {
        let [baseline, system] = hyps.as_slice() else {
            bail!("--paired-bs needs two hypothesis files: -i BASELINE SYSTEM")
        };
        let r = named(
            paired_bootstrap(
                baseline,
                system,
                &refs,
                &options,
                args.paired_bs_n as usize,
                12345,
            ),
            &args.input[1],
        )?;
        if json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            println!(
                "baseline {:.2} (mean {:.2}, 95% CI {:.2}–{:.2})",
                r.baseline, r.baseline_mean, r.baseline_ci.0, r.baseline_ci.1
            );
            println!(
                "system   {:.2} (mean {:.2}, 95% CI {:.2}–{:.2})",
                r.system, r.system_mean, r.system_ci.0, r.system_ci.1
            );
            println!(
                "delta    {:+.2} (95% CI {:+.2}–{:+.2}), p = {:.4} over {} resamples",
                r.system - r.baseline,
                r.delta_ci.0,
                r.delta_ci.1,
                r.p_value,
                r.samples
            );
        }
        return Ok(());
    }
    for (hyp, file) in hyps.iter().zip(&args.input) {
        let bleu = named(corpus_bleu(hyp, &refs, &options), file)?;
        let chrf = if args.chrf {
            Some(named(corpus_chrf(hyp, &refs), file)?)
        } else {
            None
        };
        if json {
            let mut v = serde_json::to_value(&bleu)?;
            if let Some((score, sig)) = &chrf {
                v["chrf"] = serde_json::json!({ "score": score, "signature": sig });
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!("{}", bleu.line);
            println!("{}", bleu.signature);
            if let Some((score, sig)) = chrf {
                println!("chrF2 = {score:.2}\n{sig}");
            }
        }
    }
    Ok(())
}
