//! `seqls bench train|decode`: throughput on the reference shapes, next to the PyTorch / Hugging Face
//! (and CTranslate2) figures measured in the same run when `--python` names an interpreter that has
//! torch, transformers and ctranslate2.

use crate::DeviceArgs;
use clap::{Args, Subcommand, ValueEnum};
use seqls_bench::{Shape, run_reference, time_decoding, time_training};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Training steps per second (fwd + bwd + Adam) → target tokens/s
    Train(TrainBenchArgs),
    /// Batched beam search forced to a fixed length → sentences/s
    Decode(DecodeBenchArgs),
}

impl ReferenceArgs {
    fn reference_dir(&self) -> PathBuf {
        crate::args::bench_dir(self.reference_dir.clone())
    }
}

#[derive(Args)]
pub struct ReferenceArgs {
    /// Python with torch + transformers (+ ctranslate2, sentencepiece for decode) to time the references
    #[arg(long)]
    python: Option<PathBuf>,
    /// Directory holding ref_bench.py and ref_ct2.py (default: `bench/` of the current directory, else
    /// the `bench/` of the checkout this binary was built from)
    #[arg(long)]
    reference_dir: Option<PathBuf>,
    /// Timed runs per round (median reported)
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Rounds: seqls and the references run back to back this many times; the ratio reported is the
    /// median of the per-round ratios
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args)]
pub struct TrainBenchArgs {
    /// The benchmark shape (default: both)
    #[arg(long, value_enum, ignore_case = true)]
    shape: Option<ShapeName>,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[arg(long, default_value_t = 20)]
    src_len: usize,
    #[arg(long, default_value_t = 20)]
    tgt_len: usize,
    /// Also time word-level distillation steps (a frozen teacher of the same shape scores every
    /// batch) and print their cost relative to plain steps
    #[arg(long)]
    kd: bool,
    #[command(flatten)]
    reference: ReferenceArgs,
}

#[derive(Args)]
pub struct DecodeBenchArgs {
    /// The benchmark shape (default: both)
    #[arg(long, value_enum, ignore_case = true)]
    shape: Option<ShapeName>,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    #[arg(long, default_value_t = 20)]
    src_len: usize,
    /// Decoder steps per sentence (forced)
    #[arg(long, default_value_t = 20)]
    steps: usize,
    #[arg(long, default_value_t = 4)]
    beam: usize,
    /// A trained run instead of random weights: decode --input with it, at --beams, against
    /// CTranslate2 (float32 and int8) on the same weights exported (needs --python with ctranslate2)
    #[arg(long, requires = "input")]
    model: Option<PathBuf>,
    /// Source sentences, one per line (with --model)
    #[arg(long, requires = "model")]
    input: Option<PathBuf>,
    /// Beam sizes (with --model)
    #[arg(long, value_delimiter = ',', default_value = "1,4,64")]
    beams: Vec<usize>,
    #[command(flatten)]
    reference: ReferenceArgs,
}

/// `--shape`: the shapes of `bench/ref_bench.py`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ShapeName {
    /// vocab 4000, d 128, 2+2 layers, FF 512
    #[value(name = "XS")]
    Xs,
    /// vocab 8000, d 256, 3+3 layers, FF 1024
    #[value(name = "S")]
    S,
}

fn shapes(name: &Option<ShapeName>) -> anyhow::Result<Vec<Shape>> {
    Ok(match name {
        Some(n) => {
            let name = match n {
                ShapeName::Xs => "XS",
                ShapeName::S => "S",
            };
            vec![Shape::by_name(name)?]
        }
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
    precision: seqls_model::Precision,
) -> Vec<String> {
    let mut args: Vec<String> = [what, "--config", shape].map(String::from).to_vec();
    args.extend(["--precision".to_string(), precision.to_string()]);
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

/// One engine's figure per round.
struct Series {
    name: &'static str,
    unit: &'static str,
    values: Vec<f64>,
}

/// Prints the round-by-round figures and, per reference, the median of the per-round ratios
/// `seqls / reference` with their range. Ratios are taken within a round (seqls and the references
/// run back to back), which cancels most of the drift of a shared machine.
fn report(title: &str, ours: &Series, references: &[Series]) {
    for (round, &value) in ours.values.iter().enumerate() {
        let mut line = format!(
            "{title} round {}: seqls {value:.1} {}",
            round + 1,
            ours.unit
        );
        for r in references {
            if let Some(&v) = r.values.get(round) {
                line += &format!(" | {} {v:.1} ({:.2}×)", r.name, value / v);
            }
        }
        println!("{line}");
    }
    let mut line = format!(
        "{title}: seqls {:.1} {} (median of {} rounds)",
        seqls_bench::median(ours.values.clone()),
        ours.unit,
        ours.values.len()
    );
    for r in references.iter().filter(|r| !r.values.is_empty()) {
        let ratios: Vec<f64> = ours
            .values
            .iter()
            .zip(&r.values)
            .map(|(o, v)| o / v)
            .collect();
        let (lo, hi) = ratios
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            });
        line += &format!(
            " | {} {:.1}: ratio {:.2}× [{lo:.2}–{hi:.2}]",
            r.name,
            seqls_bench::median(r.values.clone()),
            seqls_bench::median(ratios)
        );
    }
    println!("{line}");
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Train(a) => {
            let r = &a.reference;
            let (device, threads) = r.device.resolve()?;
            let precision = r.device.precision.unwrap_or_default();
            let bf16 = precision == seqls_model::Precision::Bf16;
            for shape in shapes(&a.shape)? {
                let mut ours = Series {
                    name: if bf16 { "seqls bf16" } else { "seqls" },
                    unit: "tgt tok/s",
                    values: vec![],
                };
                let mut torch = Series {
                    name: if bf16 {
                        "PyTorch bf16 autocast"
                    } else {
                        "PyTorch"
                    },
                    unit: "tgt tok/s",
                    values: vec![],
                };
                let mut distilled = Series {
                    name: "seqls word-KD",
                    unit: "tgt tok/s",
                    values: vec![],
                };
                for _ in 0..r.rounds {
                    let timing = time_training(
                        shape, a.batch, a.src_len, a.tgt_len, r.runs, threads, false, &device,
                    );
                    ours.values.push(timing.per_second);
                    if a.kd {
                        let timing = time_training(
                            shape, a.batch, a.src_len, a.tgt_len, r.runs, threads, true, &device,
                        );
                        distilled.values.push(timing.per_second);
                    }
                    if let Some(python) = &r.python {
                        let args = ref_bench_args(
                            "train", shape.name, threads, a.batch, a.src_len, a.tgt_len, None,
                            r.runs, precision,
                        );
                        let v: seqls_bench::TorchTraining =
                            run_reference(python, &r.reference_dir().join("ref_bench.py"), &args)?;
                        torch.values.push(v.tgt_tok_per_s);
                    }
                }
                let title = format!(
                    "train {:<2} batch {}×{}/{} threads {threads}",
                    shape.name, a.batch, a.src_len, a.tgt_len
                );
                report(&title, &ours, &[torch]);
                if a.kd {
                    // Step cost of a distillation step relative to a plain one, per round.
                    let costs: Vec<f64> = ours
                        .values
                        .iter()
                        .zip(&distilled.values)
                        .map(|(plain, kd)| plain / kd)
                        .collect();
                    let (lo, hi) = costs
                        .iter()
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                            (lo.min(x), hi.max(x))
                        });
                    println!(
                        "train {:<2} word-KD step (same-shape teacher, T 2, β 0.5): {:.1} tgt tok/s, {:.2}× the time of a plain step [{lo:.2}–{hi:.2}]",
                        shape.name,
                        seqls_bench::median(distilled.values.clone()),
                        seqls_bench::median(costs)
                    );
                }
            }
        }
        BenchCommand::Decode(a) if a.model.is_some() => real_model(&a)?,
        BenchCommand::Decode(a) => {
            let r = &a.reference;
            let (device, threads) = r.device.resolve()?;
            let precision = r.device.precision.unwrap_or_default();
            let bf16 = precision == seqls_model::Precision::Bf16;
            for shape in shapes(&a.shape)? {
                let unit = "sent/s";
                let mut ours = Series {
                    name: if bf16 { "seqls bf16" } else { "seqls" },
                    unit,
                    values: vec![],
                };
                let mut hf = Series {
                    name: if bf16 {
                        "HF generate bf16"
                    } else {
                        "HF generate"
                    },
                    unit,
                    values: vec![],
                };
                // CTranslate2 has no bf16 on CPUs: against bf16, its faster of float32 and int8.
                let mut ct2 = Series {
                    name: if bf16 {
                        "CTranslate2 fastest (fp32/int8)"
                    } else {
                        "CTranslate2 fp32"
                    },
                    unit,
                    values: vec![],
                };
                for _ in 0..r.rounds {
                    let timing = time_decoding(
                        shape, a.batch, a.src_len, a.steps, a.beam, r.runs, threads, &device,
                    );
                    ours.values.push(timing.per_second);
                    let Some(python) = &r.python else { continue };
                    let args = ref_bench_args(
                        "decode",
                        shape.name,
                        threads,
                        a.batch,
                        a.src_len,
                        a.steps,
                        Some(a.beam),
                        r.runs,
                        precision,
                    );
                    let v: seqls_bench::HfDecoding =
                        run_reference(python, &r.reference_dir().join("ref_bench.py"), &args)?;
                    hf.values.push(v.sent_per_s);
                    match run_reference::<seqls_bench::Ct2Decoding>(
                        python,
                        &r.reference_dir().join("ref_ct2.py"),
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
                        Ok(v) if bf16 => ct2
                            .values
                            .push(v.sent_per_s.ct2_float32.max(v.sent_per_s.ct2_int8)),
                        Ok(v) => ct2.values.push(v.sent_per_s.ct2_float32),
                        Err(e) => eprintln!("warning: CTranslate2 reference skipped: {e}"),
                    }
                }
                let title = format!(
                    "decode {:<2} {} sentences × beam {} × {} steps threads {threads}",
                    shape.name, a.batch, a.beam, a.steps
                );
                report(&title, &ours, &[hf, ct2]);
            }
        }
    }
    Ok(())
}

/// `bench decode --model RUN --input FILE`: the run's model on real sentences at each of `--beams`,
/// seqls against CTranslate2 float32 and int8 on the same weights, exported once (`seqls export
/// --format ctranslate2`), timed back to back in each round (`bench/ref_ct2_model.py`: one call in
/// batches of 64).
///
/// Both engines run the same search: a sentence ends once it has beam-size finished hypotheses
/// (CTranslate2's rule at its default patience 1, fairseq's, and `seqls decode --early-stop`; on the
/// converged De→En model the two give the same translation for all of 200 test sentences at beam 64).
/// `seqls decode`'s default, the exact stopping rule (a sentence ends when no unfinished hypothesis
/// can still win), is timed as well (beyond beam 1, where the two rules agree) and printed on its
/// own line: under length normalisation it
/// rarely ends a sentence before the length limit, so at large beams it searches far longer.
fn real_model(a: &DecodeBenchArgs) -> anyhow::Result<()> {
    let r = &a.reference;
    let (run, input) = (a.model.as_ref().unwrap(), a.input.as_ref().unwrap());
    let Some(python) = &r.python else {
        anyhow::bail!(
            "--model compares with CTranslate2: pass --python (with ctranslate2, tokenizers, safetensors, numpy)"
        );
    };
    let (device, threads) = r.device.resolve()?;
    let (config, tokenizer, model) = seqls_run::RunDir::new(run).load_model(&device)?;
    let sources: Vec<Vec<u32>> = seqls_data::read::read_lines(input)?
        .iter()
        .map(|l| seqls_data::encode_source(&tokenizer, l.trim(), config.model.max_len))
        .collect::<Result<_, _>>()?;
    let exported = tempfile::tempdir()?;
    let ct2_model = exported.path().join("ct2");
    crate::export::ctranslate2(run, &ct2_model, python, r.reference_dir.clone())?;
    let translator = seqls_model::Translator::new(&model, &device);
    let decode = &config.decode;
    let (lenpen, max_len_a, max_len_b) = match decode.length_penalty {
        seqls_decode::LengthPenalty::Power(a) => (a, decode.max_len_a, decode.max_len_b),
        other => anyhow::bail!(
            "CTranslate2 ranks by score / length^A; this run decodes with {}",
            other.label()
        ),
    };
    for &beam in &a.beams {
        let search = seqls_decode::SearchConfig {
            beam_size: beam,
            early_stop: true,
            ..decode.clone()
        };
        let exact_stopping = seqls_decode::SearchConfig {
            early_stop: false,
            ..search.clone()
        };
        let series = |name| Series {
            name,
            unit: "sent/s",
            values: vec![],
        };
        let (mut ours, mut exact, mut f32s, mut int8s) = (
            series("seqls"),
            series("seqls, exact stopping rule"),
            series("CTranslate2 fp32"),
            series("CTranslate2 int8"),
        );
        for _ in 0..r.rounds {
            let timing =
                seqls_bench::time_translation(&translator, &sources, &search, 64, r.runs, threads);
            ours.values.push(timing.per_second);
            // At beam 1 both rules end a sentence at its first finished hypothesis.
            if beam > 1 {
                let timing = seqls_bench::time_translation(
                    &translator,
                    &sources,
                    &exact_stopping,
                    64,
                    r.runs,
                    threads,
                );
                exact.values.push(timing.per_second);
            }
            let args = [
                ct2_model.display().to_string(),
                "--input".into(),
                input.display().to_string(),
                "--beam".into(),
                beam.to_string(),
                "--threads".into(),
                threads.to_string(),
                "--runs".into(),
                r.runs.to_string(),
                "--lenpen".into(),
                lenpen.to_string(),
                "--max-len-a".into(),
                max_len_a.to_string(),
                "--max-len-b".into(),
                max_len_b.to_string(),
            ];
            let v: seqls_bench::Ct2Decoding =
                run_reference(python, &r.reference_dir().join("ref_ct2_model.py"), &args)?;
            f32s.values.push(v.sent_per_s.ct2_float32);
            int8s.values.push(v.sent_per_s.ct2_int8);
        }
        let title = format!(
            "decode {} ({} sentences) beam {beam} threads {threads}",
            run.display(),
            sources.len()
        );
        report(&title, &ours, &[f32s, int8s]);
        if exact.values.is_empty() {
            continue;
        }
        println!(
            "{title}: seqls with decode's default, the exact stopping rule: {:.1} sent/s (median of {} rounds; \
             a longer search than CTranslate2's, so not compared)",
            seqls_bench::median(exact.values.clone()),
            exact.values.len()
        );
    }
    Ok(())
}
