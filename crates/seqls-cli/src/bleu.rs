//! `seqls bleu REF... -i HYP`: the sacreBLEU command line (2.6.0) for corpus BLEU, chrF and paired
//! bootstrap, with its flags (`-tok`, `-lc`, `-s`, `-sv`, `-m bleu chrf`, `-b`, `-w`, `-f json|text`)
//! and its output, so that a command copied from a paper runs unchanged and prints the same.

use anyhow::bail;
use clap::{Args, ValueEnum};
use seqls_data::read::read_lines;
use seqls_eval::bleu::{BleuOptions, BleuReport, corpus_bleu, corpus_chrf, paired_bootstrap};
use std::ffi::OsString;
use std::path::PathBuf;

/// Rewrites sacreBLEU's multi-letter short flags after the `bleu` subcommand (`-tok`, `-lc`, `-sv`)
/// to their long forms, which clap parses.
pub fn sacrebleu_flags(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut in_bleu = false;
    args.into_iter()
        .map(|a| {
            if a == "bleu" {
                in_bleu = true;
            }
            match a.to_str() {
                Some("-tok") if in_bleu => "--tokenize".into(),
                Some("-lc") if in_bleu => "--lowercase".into(),
                Some("-sv") if in_bleu => "--smooth-value".into(),
                _ => a,
            }
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Metric {
    Bleu,
    Chrf,
}

/// `-tok`: sacreBLEU's tokenizers that seqls computes exactly (`zh` and the others are refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Tokenizer {
    /// mteval-v13a (sacreBLEU's default)
    #[value(name = "13a")]
    Thirteen,
    /// mteval-v14 international
    Intl,
    /// characters
    Char,
    /// whitespace only
    None,
}

impl Tokenizer {
    fn name(self) -> &'static str {
        match self {
            Tokenizer::Thirteen => "13a",
            Tokenizer::Intl => "intl",
            Tokenizer::Char => "char",
            Tokenizer::None => "none",
        }
    }
}

/// `-s`: sacreBLEU's smoothing methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Smoothing {
    /// exponential decay (sacreBLEU's default)
    Exp,
    /// a floor value for zero counts (`-sv`, default 0.1)
    Floor,
    /// add k to every count (`-sv`, a whole number, default 1)
    #[value(name = "add-k")]
    AddK,
    None,
}

impl Smoothing {
    fn name(self) -> &'static str {
        match self {
            Smoothing::Exp => "exp",
            Smoothing::Floor => "floor",
            Smoothing::AddK => "add-k",
            Smoothing::None => "none",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub enum Format {
    /// sacreBLEU's JSON (the default, as in sacreBLEU 2)
    Json,
    /// `NAME|SIGNATURE = SCORE ...` lines
    Text,
}

#[derive(Args, Debug)]
pub struct BleuArgs {
    /// Reference files (several for multi-reference BLEU)
    #[arg(required = true)]
    refs: Vec<PathBuf>,
    /// Hypothesis file(s); two with --paired-bs (baseline first)
    #[arg(short = 'i', long = "input", required = true, num_args = 1..)]
    input: Vec<PathBuf>,
    /// Tokenizer (also -tok)
    #[arg(long, value_enum, default_value_t = Tokenizer::Thirteen)]
    tokenize: Tokenizer,
    /// Lowercase before scoring (also -lc)
    #[arg(long)]
    lowercase: bool,
    /// Smoothing of zero n-gram counts
    #[arg(short = 's', long, value_enum, default_value_t = Smoothing::Exp)]
    smooth_method: Smoothing,
    /// Smoothing value (floor: 0.1, add-k: 1 by default) (also -sv)
    #[arg(long)]
    smooth_value: Option<f64>,
    /// Metrics to compute, in sacreBLEU's order (BLEU, then chrF)
    #[arg(short = 'm', long = "metrics", value_enum, num_args = 1.., default_values_t = [Metric::Bleu])]
    metrics: Vec<Metric>,
    /// Also compute chrF (the same as -m bleu chrf)
    #[arg(long)]
    chrf: bool,
    /// Print only the score(s)
    #[arg(short = 'b', long)]
    score_only: bool,
    /// Decimals of the printed scores
    #[arg(short = 'w', long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=10))]
    width: u8,
    /// Output format
    #[arg(short = 'f', long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Paired bootstrap resampling between two systems (-i BASELINE SYSTEM)
    #[arg(long)]
    paired_bs: bool,
    /// Resamples for --paired-bs (1–1000000)
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    paired_bs_n: u32,
}

/// One computed metric, as sacreBLEU prints it.
struct Scored {
    name: &'static str,
    score: f64,
    signature: String,
    /// BLEU only: precisions, brevity penalty, ratio and lengths.
    verbose: Option<String>,
}

impl Scored {
    fn bleu(r: &BleuReport) -> Scored {
        // `line` is `BLEU = SCORE VERBOSE`.
        let verbose = r.line.splitn(4, ' ').nth(3).unwrap_or_default().to_string();
        Scored {
            name: "BLEU",
            score: r.score,
            signature: r.signature.clone(),
            verbose: Some(verbose),
        }
    }

    /// sacreBLEU's `NAME|SIGNATURE = SCORE VERBOSE` line.
    fn line(&self, width: usize) -> String {
        let mut line = format!("{}|{} = {:.width$}", self.name, self.signature, self.score);
        if let Some(v) = &self.verbose {
            line.push(' ');
            line.push_str(v);
        }
        line
    }

    /// sacreBLEU's JSON object: name, score (rounded to `width`), signature, verbose score, then
    /// each signature field; one-space indentation, in that order.
    fn json(&self, width: usize) -> anyhow::Result<String> {
        let score: f64 = format!("{:.width$}", self.score).parse()?;
        let mut fields = vec![
            ("name".to_string(), serde_json::to_string(self.name)?),
            ("score".into(), serde_json::to_string(&score)?),
            ("signature".into(), serde_json::to_string(&self.signature)?),
        ];
        if let Some(v) = &self.verbose {
            fields.push(("verbose_score".into(), serde_json::to_string(v)?));
        }
        for part in self.signature.split('|') {
            if let Some((k, v)) = part.split_once(':') {
                fields.push((k.to_string(), serde_json::to_string(v)?));
            }
        }
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!(" {}: {v}", serde_json::to_string(k).unwrap_or_default()))
            .collect();
        Ok(format!("{{\n{}\n}}", body.join(",\n")))
    }
}

/// Prints the scores of one system the way sacreBLEU 2.6.0 does (`print_single_results`).
fn print_scores(scored: &[Scored], args: &BleuArgs) -> anyhow::Result<()> {
    let width = args.width as usize;
    let json = args.format == Format::Json;
    let results: Vec<String> = if args.score_only {
        scored
            .iter()
            .map(|s| format!("{:.width$}", s.score))
            .collect()
    } else if json {
        scored
            .iter()
            .map(|s| s.json(width))
            .collect::<Result<_, _>>()?
    } else {
        scored.iter().map(|s| s.line(width)).collect()
    };
    if json && results.len() > 1 {
        println!("[\n{}\n]", results.join(",\n"));
    } else if json || results.len() == 1 || args.score_only {
        for r in &results {
            println!("{r}");
        }
    } else {
        // Several text lines: aligned on their `=`.
        let left = |l: &str| l.find('=').map_or(0, |i| i.saturating_sub(1));
        let w = results.iter().map(|l| left(l)).max().unwrap_or(0);
        for l in &results {
            let (a, b) = l.split_at(left(l));
            println!("{a:>w$}{b}");
        }
    }
    Ok(())
}

fn named<T>(r: Result<T, seqls_eval::EvalError>, file: &std::path::Path) -> anyhow::Result<T> {
    r.map_err(|e| anyhow::Error::new(e).context(file.display().to_string()))
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
        tokenize: args.tokenize.name().into(),
        lowercase: args.lowercase,
        smooth_method: args.smooth_method.name().into(),
        smooth_value: args.smooth_value,
    };
    let json = args.format == Format::Json;
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
    let mut metrics = args.metrics.clone();
    if args.chrf {
        metrics.push(Metric::Chrf);
    }
    metrics.sort();
    metrics.dedup();
    for (hyp, file) in hyps.iter().zip(&args.input) {
        let mut scored = Vec::new();
        for metric in &metrics {
            scored.push(match metric {
                Metric::Bleu => Scored::bleu(&named(corpus_bleu(hyp, &refs, &options), file)?),
                Metric::Chrf => {
                    let (score, signature) = named(corpus_chrf(hyp, &refs), file)?;
                    Scored {
                        name: "chrF2",
                        score,
                        signature,
                        verbose: None,
                    }
                }
            });
        }
        print_scores(&scored, &args)?;
    }
    Ok(())
}
