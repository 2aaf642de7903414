//! `seqls sweep` and `seqls report`: train every α, evaluate each at every beam size, and write
//! `report.md`, `report.json` and `table.csv` in the sweep directory.
//!
//! Layout: `SWEEP/a<α>-s<seed>/` is a run directory; its `eval-test-beam<K>.json` files are the
//! evaluations. Finished work (a run with `metrics.json`, an existing evaluation) is skipped;
//! interrupted training resumes from its checkpoint.

use crate::eval::evaluate;
use crate::train::ConfigArgs;
use anyhow::Context;
use clap::Args;
use seqls_eval::{BleuOptions, paired_bootstrap};
use seqls_train::{ExperimentConfig, RunDir, TrainOptions};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

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
    #[command(flatten)]
    device: crate::DeviceArgs,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Sweep directory
    dir: PathBuf,
}

fn run_name(alpha: f64, seed: u64) -> String {
    format!("a{alpha}-s{seed}")
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
    config.validate().map_err(anyhow::Error::msg)?;
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
                    "seqls train --config {} --alpha {alpha} --seed {seed} --run-dir {} --resume --quiet",
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
                    resume: true,
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
                let r = evaluate(&run, "test", &search, 15, &output, &device)?;
                eprintln!(
                    "   α = {alpha} beam {beam}: BLEU {:.2}, ECE {:.4}",
                    r.bleu.score, r.teacher_forced.with_eos.ece
                );
            }
        }
    }
    if !args.plan {
        let report = write_report(&out)?;
        println!("{report}");
        println!("wrote {}", out.join("report.md").display());
    }
    Ok(())
}

pub fn run_report(args: ReportArgs) -> anyhow::Result<()> {
    println!("{}", write_report(&args.dir)?);
    Ok(())
}

/// One row of the main table.
#[derive(Debug, Serialize)]
struct Row {
    alpha: f64,
    seed: u64,
    valid_nll: Option<f64>,
    valid_perplexity: Option<f64>,
    valid_accuracy: Option<f64>,
    train_seconds: f64,
    threads: usize,
    test_nll: f64,
    ece: f64,
    mce: f64,
    adaptive_ece: f64,
    temperature: f64,
    ece_at_temperature: f64,
    /// (beam, BLEU, length ratio), by beam.
    bleu: Vec<(usize, f64, f64)>,
    /// Greedy validation BLEU per epoch.
    valid_bleu_per_epoch: Vec<f64>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    serde_json::from_str(&text).with_context(|| path.display().to_string())
}

/// Assembles `report.md`, `report.json` and `table.csv` from the finished jobs in `dir`.
fn write_report(dir: &Path) -> anyhow::Result<String> {
    let config = ExperimentConfig::load(&dir.join("sweep.toml")).map_err(anyhow::Error::msg)?;
    let mut rows = Vec::new();
    let mut hyps_at_4: Vec<(f64, Vec<String>)> = Vec::new();
    for &seed in &config.sweep.seeds {
        for &alpha in &config.sweep.alphas {
            let run = RunDir::new(dir.join(run_name(alpha, seed)));
            if !run.metrics().exists() {
                continue;
            }
            let metrics: serde_json::Value = read_json(&run.metrics())?;
            let mut evals: Vec<EvalJson> = Vec::new();
            for &beam in &config.sweep.beams {
                let p = run.root.join(format!("eval-test-beam{beam}.json"));
                if p.exists() {
                    evals.push((beam, read_json(&p)?));
                }
            }
            let Some((_, first)) = evals.first() else {
                continue;
            };
            let log = std::fs::read_to_string(run.log()).unwrap_or_default();
            let valid_bleu_per_epoch = log
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|v| v["greedy_bleu"].as_f64())
                .collect();
            let tf = &first["teacher_forced"];
            if let Some((_, e4)) = evals.iter().find(|(b, _)| *b == 4) {
                let hyp = run
                    .root
                    .join(e4["hypotheses_file"].as_str().unwrap_or_default());
                hyps_at_4.push((alpha, seqls_data::read::read_lines(&hyp)?));
            }
            rows.push(Row {
                alpha,
                seed,
                valid_nll: metrics["final_valid"]["nll"].as_f64(),
                valid_perplexity: metrics["final_valid"]["perplexity"].as_f64(),
                valid_accuracy: metrics["final_valid"]["accuracy"].as_f64(),
                train_seconds: metrics["train_seconds"].as_f64().unwrap_or(0.0),
                threads: metrics["threads"].as_u64().unwrap_or(0) as usize,
                test_nll: tf["nll"].as_f64().unwrap_or(f64::NAN),
                ece: tf["with_eos"]["ece"].as_f64().unwrap_or(f64::NAN),
                mce: tf["with_eos"]["mce"].as_f64().unwrap_or(f64::NAN),
                adaptive_ece: tf["with_eos"]["adaptive_ece"].as_f64().unwrap_or(f64::NAN),
                temperature: first["fitted_temperature"].as_f64().unwrap_or(f64::NAN),
                ece_at_temperature:
                    first["teacher_forced_at_fitted_temperature"]["with_eos"]["ece"]
                        .as_f64()
                        .unwrap_or(f64::NAN),
                bleu: evals
                    .iter()
                    .map(|(b, e)| {
                        (
                            *b,
                            e["bleu"]["score"].as_f64().unwrap_or(f64::NAN),
                            e["length_ratio"].as_f64().unwrap_or(f64::NAN),
                        )
                    })
                    .collect(),
                valid_bleu_per_epoch,
            });
        }
    }
    let beams = &config.sweep.beams;
    let mut md = String::new();
    writeln!(md, "# seqls sweep: {} (test split)\n", config.name)?;
    write!(
        md,
        "| α | seed | valid NLL | valid ppl | valid acc | test NLL | ECE | MCE | adaptive ECE | T* | ECE@T* |"
    )?;
    for b in beams {
        write!(md, " BLEU b{b} |")?;
    }
    writeln!(
        md,
        " Δ b4−b1 |{} train s (threads) |",
        beams
            .iter()
            .map(|b| format!(" len b{b} |"))
            .collect::<String>()
    )?;
    writeln!(md, "|{}", "---|".repeat(13 + 2 * beams.len()))?;
    let mut csv = String::from(
        "alpha,seed,valid_nll,valid_ppl,valid_acc,test_nll,ece,mce,adaptive_ece,temperature,ece_at_temperature",
    );
    for b in beams {
        write!(csv, ",bleu_b{b},len_ratio_b{b}")?;
    }
    csv.push_str(",train_seconds\n");
    let f = |x: Option<f64>, d: usize| x.map(|v| format!("{v:.d$}")).unwrap_or_else(|| "–".into());
    for r in &rows {
        write!(
            md,
            "| {} | {} | {} | {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.3} | {:.4} |",
            r.alpha,
            r.seed,
            f(r.valid_nll, 4),
            f(r.valid_perplexity, 2),
            f(r.valid_accuracy.map(|a| 100.0 * a), 2),
            r.test_nll,
            r.ece,
            r.mce,
            r.adaptive_ece,
            r.temperature,
            r.ece_at_temperature
        )?;
        write!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{}",
            r.alpha,
            r.seed,
            f(r.valid_nll, 6),
            f(r.valid_perplexity, 4),
            f(r.valid_accuracy, 6),
            r.test_nll,
            r.ece,
            r.mce,
            r.adaptive_ece,
            r.temperature,
            r.ece_at_temperature
        )?;
        let bleu_at = |k: usize| r.bleu.iter().find(|x| x.0 == k).map(|x| x.1);
        for b in beams {
            write!(md, " {} |", f(bleu_at(*b), 2))?;
            let entry = r.bleu.iter().find(|x| x.0 == *b);
            write!(
                csv,
                ",{},{}",
                f(entry.map(|x| x.1), 4),
                f(entry.map(|x| x.2), 4)
            )?;
        }
        let gain = bleu_at(4).zip(bleu_at(1)).map(|(a, b)| a - b);
        write!(
            md,
            " {} |",
            gain.map(|g| format!("{g:+.2}"))
                .unwrap_or_else(|| "–".into())
        )?;
        for b in beams {
            write!(
                md,
                " {} |",
                f(r.bleu.iter().find(|x| x.0 == *b).map(|x| x.2), 3)
            )?;
        }
        writeln!(md, " {:.0} ({}) |", r.train_seconds, r.threads)?;
        writeln!(csv, ",{:.1}", r.train_seconds)?;
    }
    writeln!(
        md,
        "\nBLEU: sacreBLEU on detokenised output, `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`. ECE/MCE: teacher-forced top-class confidence, 15 equal-width bins, `</s>` included. T*: temperature minimising validation NLL. len bK: hypothesis/reference length ratio at beam K.\n"
    )?;
    writeln!(md, "## Greedy validation BLEU per epoch\n")?;
    for r in &rows {
        writeln!(
            md,
            "- α = {}: {}",
            r.alpha,
            r.valid_bleu_per_epoch
                .iter()
                .map(|b| format!("{b:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    if let Some((base_alpha, base)) = hyps_at_4
        .iter()
        .find(|(a, _)| *a == 0.0)
        .or(hyps_at_4.first())
    {
        let text = config.data.load_split("test")?;
        let refs = vec![text.pairs.iter().map(|p| p.tgt.clone()).collect::<Vec<_>>()];
        writeln!(
            md,
            "\n## Beam 4: α vs α = {base_alpha} (paired bootstrap, 1000 resamples)\n"
        )?;
        writeln!(
            md,
            "| α | BLEU | Δ | 95% CI of Δ | p |\n|---|---|---|---|---|"
        )?;
        for (alpha, hyps) in &hyps_at_4 {
            if alpha == base_alpha {
                continue;
            }
            let bs = paired_bootstrap(base, hyps, &refs, &BleuOptions::default(), 1000, 12345)
                .map_err(anyhow::Error::msg)?;
            writeln!(
                md,
                "| {alpha} | {:.2} | {:+.2} | [{:+.2}, {:+.2}] | {:.4} |",
                bs.system,
                bs.system - bs.baseline,
                bs.delta_ci.0,
                bs.delta_ci.1,
                bs.p_value
            )?;
        }
    }
    writeln!(
        md,
        "\nReproduce: `seqls sweep --config {}/sweep.toml --out {}` (finished jobs are skipped), or `seqls report {}`.",
        dir.display(),
        dir.display(),
        dir.display()
    )?;
    seqls_data::read::write_atomic(&dir.join("report.md"), md.as_bytes())?;
    seqls_data::read::write_atomic(&dir.join("table.csv"), csv.as_bytes())?;
    seqls_data::read::write_atomic(
        &dir.join("report.json"),
        serde_json::to_string_pretty(&rows)?.as_bytes(),
    )?;
    Ok(md)
}

type EvalJson = (usize, serde_json::Value);
