//! `seqls bench train|decode`: throughput on the reference shapes, next to the PyTorch / Hugging Face
//! (and CTranslate2) figures measured in the same run when `--python` names an interpreter that has
//! torch, transformers and ctranslate2.

use crate::DeviceArgs;
use clap::{Args, Subcommand};
use seqls_bench::{Shape, run_reference, time_decoding, time_training};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Training steps per second (fwd + bwd + Adam) → target tokens/s
    Train(TrainBenchArgs),
    /// Batched beam search forced to a fixed length → sentences/s
    Decode(DecodeBenchArgs),
}

#[derive(Args)]
pub struct ReferenceArgs {
    /// Python with torch + transformers (+ ctranslate2, sentencepiece for decode) to time the references
    #[arg(long)]
    python: Option<PathBuf>,
    /// Directory holding ref_bench.py and ref_ct2.py
    #[arg(long, default_value = "../shared/bench")]
    reference_dir: PathBuf,
    /// Timed runs (median reported)
    #[arg(long, default_value_t = 5)]
    runs: usize,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args)]
pub struct TrainBenchArgs {
    /// XS (vocab 4000, d 128, 2+2 layers) or S (vocab 8000, d 256, 3+3 layers); default both
    #[arg(long)]
    shape: Option<String>,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[arg(long, default_value_t = 20)]
    src_len: usize,
    #[arg(long, default_value_t = 20)]
    tgt_len: usize,
    #[command(flatten)]
    reference: ReferenceArgs,
}

#[derive(Args)]
pub struct DecodeBenchArgs {
    #[arg(long)]
    shape: Option<String>,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    #[arg(long, default_value_t = 20)]
    src_len: usize,
    /// Decoder steps per sentence (forced)
    #[arg(long, default_value_t = 20)]
    steps: usize,
    #[arg(long, default_value_t = 4)]
    beam: usize,
    #[command(flatten)]
    reference: ReferenceArgs,
}

fn shapes(name: &Option<String>) -> anyhow::Result<Vec<Shape>> {
    Ok(match name {
        Some(n) => vec![Shape::by_name(n).map_err(anyhow::Error::msg)?],
        None => seqls_bench::SHAPES.to_vec(),
    })
}

/// Command-line arguments of `ref_bench.py`.
#[allow(clippy::too_many_arguments)]
fn ref_bench_args(
    what: &str,
    shape: &str,
    threads: usize,
    batch: usize,
    src_len: usize,
    tgt_len: usize,
    beam: Option<usize>,
    runs: usize,
) -> Vec<String> {
    let mut args: Vec<String> = [what, "--config", shape].map(String::from).to_vec();
    for (flag, value) in [
        ("--threads", threads),
        ("--batch", batch),
        ("--src-len", src_len),
        ("--tgt-len", tgt_len),
        ("--runs", runs),
    ] {
        args.extend([flag.to_string(), value.to_string()]);
    }
    if let Some(beam) = beam {
        args.extend(["--beam".to_string(), beam.to_string()]);
    }
    args
}

fn ratio(ours: f64, theirs: Option<f64>) -> String {
    theirs.map_or(String::new(), |t| format!(" ({:.2}×)", ours / t))
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Train(a) => {
            let r = &a.reference;
            let (device, threads) = r.device.resolve()?;
            for shape in shapes(&a.shape)? {
                let ours = time_training(
                    shape, a.batch, a.src_len, a.tgt_len, r.runs, threads, &device,
                );
                let torch = match &r.python {
                    Some(python) => {
                        let args = ref_bench_args(
                            "train", shape.name, threads, a.batch, a.src_len, a.tgt_len, None,
                            r.runs,
                        );
                        let v = run_reference(python, &r.reference_dir.join("ref_bench.py"), &args)
                            .map_err(anyhow::Error::msg)?;
                        v["tgt_tok_per_s"].as_f64()
                    }
                    None => None,
                };
                println!(
                    "train {:<2} batch {}×{}/{} threads {}: seqls {:.0} tgt tok/s{}",
                    shape.name,
                    a.batch,
                    a.src_len,
                    a.tgt_len,
                    threads,
                    ours.per_second,
                    torch.map_or(String::new(), |t| format!(
                        " | PyTorch {t:.0} tgt tok/s | ratio {:.2}×",
                        ours.per_second / t
                    ))
                );
            }
        }
        BenchCommand::Decode(a) => {
            let r = &a.reference;
            let (device, threads) = r.device.resolve()?;
            for shape in shapes(&a.shape)? {
                let ours =
                    time_decoding(shape, a.batch, a.src_len, a.steps, a.beam, r.runs, &device);
                let (mut hf, mut ct2) = (None, None);
                if let Some(python) = &r.python {
                    let args = ref_bench_args(
                        "decode",
                        shape.name,
                        threads,
                        a.batch,
                        a.src_len,
                        a.steps,
                        Some(a.beam),
                        r.runs,
                    );
                    let v = run_reference(python, &r.reference_dir.join("ref_bench.py"), &args)
                        .map_err(anyhow::Error::msg)?;
                    hf = v["sent_per_s"].as_f64();
                    match run_reference(
                        python,
                        &r.reference_dir.join("ref_ct2.py"),
                        &[
                            "--config",
                            shape.name,
                            "--beam",
                            &a.beam.to_string(),
                            "--batch",
                            &a.batch.to_string(),
                            "--steps",
                            &a.steps.to_string(),
                        ]
                        .map(String::from),
                    ) {
                        Ok(v) => ct2 = v["sent_per_s"]["ct2_float32"].as_f64(),
                        Err(e) => eprintln!("warning: CTranslate2 reference skipped: {e}"),
                    }
                }
                println!(
                    "decode {:<2} {} sentences × beam {} × {} steps threads {}: seqls {:.1} sent/s{}{}",
                    shape.name,
                    a.batch,
                    a.beam,
                    a.steps,
                    threads,
                    ours.per_second,
                    hf.map_or(String::new(), |h| format!(
                        " | HF generate {h:.1} sent/s{}",
                        ratio(ours.per_second, Some(h))
                    )),
                    ct2.map_or(String::new(), |c| format!(
                        " | CTranslate2 fp32 {c:.1} sent/s{}",
                        ratio(ours.per_second, Some(c))
                    )),
                );
            }
        }
    }
    Ok(())
}
