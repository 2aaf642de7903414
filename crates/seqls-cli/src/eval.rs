//! `seqls eval`: decode a split, then BLEU, chrF, length ratio and teacher-forced calibration (before
//! and after temperature scaling fitted on the validation split) into `eval.json`.

use anyhow::bail;
use clap::Args;
use seqls_data::corpus::encode_pairs;
use seqls_data::{Batch, Example, ParallelText};
use seqls_decode::SearchConfig;
use seqls_eval::calibration::{Calibration, calibration};
use seqls_eval::{BleuOptions, BleuReport, corpus_bleu, corpus_chrf};
use seqls_model::{TokenScore, Transformer, teacher_forced_scores, translate};
use seqls_train::RunDir;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Run directory written by `seqls train`
    #[arg(long)]
    model: PathBuf,
    /// Split to evaluate: test (Multi30k: test_2016_flickr), val or train
    #[arg(long, default_value = "test")]
    split: String,
    #[command(flatten)]
    search: crate::decode::SearchArgs,
    /// Equal-width bins of the calibration metrics
    #[arg(long, default_value_t = 15)]
    bins: usize,
    /// Output file (default: RUN/eval-<split>-beam<K>.json)
    #[arg(long)]
    output: Option<PathBuf>,
    /// Overwrite a finished evaluation
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    device: crate::DeviceArgs,
}

/// Teacher-forced calibration of one split at one temperature.
#[derive(Debug, Clone, Serialize)]
pub struct TeacherForced {
    pub temperature: f64,
    /// NLL per reference token (nats), `</s>` included.
    pub nll: f64,
    pub with_eos: Calibration,
    pub without_eos: Calibration,
}

/// Everything `eval.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub split: String,
    pub sentences: usize,
    pub search: SearchConfig,
    pub bleu: BleuReport,
    pub chrf: f64,
    pub chrf_signature: String,
    /// Hypothesis / reference length in 13a tokens.
    pub length_ratio: f64,
    pub sentences_per_sec: f64,
    pub teacher_forced: TeacherForced,
    /// Temperature minimising validation NLL (golden-section search on [0.05, 10], to 1e-4).
    pub fitted_temperature: f64,
    pub teacher_forced_at_fitted_temperature: TeacherForced,
    pub hypotheses_file: String,
}

fn scores_of(
    model: &Transformer,
    examples: &[Example],
    temperature: f32,
    device: &burn::tensor::Device,
) -> Vec<TokenScore> {
    let mut all = Vec::new();
    for chunk in examples.chunks(64) {
        let rows: Vec<&Example> = chunk.iter().collect();
        for row in teacher_forced_scores(model, &Batch::from_examples(&rows), temperature, device) {
            all.extend(row);
        }
    }
    all
}

fn teacher_forced(
    model: &Transformer,
    examples: &[Example],
    temperature: f64,
    bins: usize,
    device: &burn::tensor::Device,
) -> TeacherForced {
    let scores = scores_of(model, examples, temperature as f32, device);
    let eos = seqls_data::tokenizer::EOS;
    let calib = |keep: &dyn Fn(&TokenScore) -> bool| {
        let kept: Vec<&TokenScore> = scores.iter().filter(|s| keep(s)).collect();
        let conf: Vec<f64> = kept.iter().map(|s| s.confidence as f64).collect();
        let ok: Vec<bool> = kept.iter().map(|s| s.predicted == s.reference).collect();
        calibration(&conf, &ok, bins)
    };
    TeacherForced {
        temperature,
        nll: -scores.iter().map(|s| s.log_prob as f64).sum::<f64>() / scores.len().max(1) as f64,
        with_eos: calib(&|_| true),
        without_eos: calib(&|s| s.reference != eos),
    }
}

/// The temperature minimising the NLL of `examples` (golden-section search over [0.05, 10]).
fn fit_temperature(
    model: &Transformer,
    examples: &[Example],
    device: &burn::tensor::Device,
) -> f64 {
    let nll = |t: f64| {
        let s = scores_of(model, examples, t as f32, device);
        -s.iter().map(|x| x.log_prob as f64).sum::<f64>() / s.len().max(1) as f64
    };
    let (mut a, mut b) = (0.05f64, 10.0f64);
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
    let (mut fc, mut fd) = (nll(c), nll(d));
    while b - a > 1e-4 {
        if fc < fd {
            (b, d, fd) = (d, c, fc);
            c = b - g * (b - a);
            fc = nll(c);
        } else {
            (a, c, fc) = (c, d, fd);
            d = a + g * (b - a);
            fd = nll(d);
        }
    }
    (a + b) / 2.0
}

/// Evaluates a trained run on `split` with `search`; writes the hypotheses next to `output`.
pub fn evaluate(
    run: &RunDir,
    split: &str,
    search: &SearchConfig,
    bins: usize,
    output: &Path,
    device: &burn::tensor::Device,
) -> anyhow::Result<EvalReport> {
    let (config, tokenizer, model) = run.load_model(device).map_err(anyhow::Error::msg)?;
    let text: ParallelText = config.data.load_split(split)?;
    if text.pairs.is_empty() {
        bail!("split {split} is empty");
    }
    let encoded = encode_pairs(&tokenizer, &text.pairs, None)?;
    let sources: Vec<Vec<u32>> = encoded.examples.iter().map(|e| e.src.clone()).collect();
    let started = std::time::Instant::now();
    let nbests = translate(&model, &sources, search, device, 64, |_| {});
    let secs = started.elapsed().as_secs_f64();
    let hyps: Vec<String> = nbests
        .iter()
        .map(|n| tokenizer.decode(&n[0].tokens))
        .collect::<Result<_, _>>()?;
    let refs = vec![text.pairs.iter().map(|p| p.tgt.clone()).collect::<Vec<_>>()];
    let bleu = corpus_bleu(&hyps, &refs, &BleuOptions::default()).map_err(anyhow::Error::msg)?;
    let (chrf, chrf_signature) = corpus_chrf(&hyps, &refs).map_err(anyhow::Error::msg)?;
    let hyp_path = output.with_extension("hyp.txt");
    seqls_data::read::write_lines(&hyp_path, hyps.iter().map(String::as_str))?;

    let valid = encode_pairs(&tokenizer, &config.data.load_split("val")?.pairs, None)?;
    let fitted_temperature = fit_temperature(&model, &valid.examples, device);
    let report = EvalReport {
        split: split.to_string(),
        sentences: hyps.len(),
        search: search.clone(),
        length_ratio: bleu.ratio,
        chrf,
        chrf_signature,
        sentences_per_sec: hyps.len() as f64 / secs.max(1e-9),
        teacher_forced: teacher_forced(&model, &encoded.examples, 1.0, bins, device),
        teacher_forced_at_fitted_temperature: teacher_forced(
            &model,
            &encoded.examples,
            fitted_temperature,
            bins,
            device,
        ),
        fitted_temperature,
        hypotheses_file: hyp_path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        bleu,
    };
    seqls_data::read::write_atomic(output, serde_json::to_string_pretty(&report)?.as_bytes())?;
    Ok(report)
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let (device, _) = args.device.resolve()?;
    let run = RunDir::new(&args.model);
    let config = seqls_train::ExperimentConfig::load(&run.config()).map_err(anyhow::Error::msg)?;
    let search = args.search.apply(config.decode.clone())?;
    let split = seqls_data::corpus::canonical_split(&args.split)?;
    let output = args.output.unwrap_or_else(|| {
        run.root
            .join(format!("eval-{split}-beam{}.json", search.beam_size))
    });
    if output.exists() && !args.force {
        bail!(
            "{} exists: this evaluation is finished (pass --force to redo it)",
            output.display()
        );
    }
    let r = evaluate(&run, split, &search, args.bins, &output, &device)?;
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
    println!("wrote {}", output.display());
    Ok(())
}
