//! `seqls decode` and `seqls score`.

use crate::args::{ExactArgs, SearchArgs};
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

/// `seqls decode --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DecodeFormat {
    /// Detokenised best hypothesis, one line per input line
    Text,
    /// Per input line, a JSON object with every hypothesis: text, tokens, score, normalised score,
    /// per-token log-probabilities
    Jsonl,
}
use indicatif::{ProgressBar, ProgressStyle};
use seqls_data::read::{read_lines, split_lines};
use seqls_data::write::write_atomic;
use seqls_data::{Batch, Example};
use seqls_model::decode::output::{exact_output_line, output_line};
use seqls_model::{Translator, teacher_forced_scores};
use seqls_run::RunDir;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args, Debug)]
pub struct DecodeArgs {
    /// Run directory written by `seqls train`
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    search: SearchArgs,
    #[command(flatten)]
    exact: ExactArgs,
    /// Source sentences, one per line (default: stdin)
    #[arg(long)]
    input: Option<PathBuf>,
    /// Output file (default: stdout); written atomically
    #[arg(long)]
    output: Option<PathBuf>,
    /// What to write
    #[arg(long, value_enum, default_value_t = DecodeFormat::Text)]
    format: DecodeFormat,
    /// Sentences per model batch (1–100000); a beam search takes at most 512 / beam size of them at a time
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch_size: u32,
    #[command(flatten)]
    device: crate::DeviceArgs,
}

pub fn run(args: DecodeArgs) -> anyhow::Result<()> {
    let (device, threads) = args.device.resolve()?;
    let jsonl = args.format == DecodeFormat::Jsonl;
    let run = RunDir::new(&args.model);
    let (config, tokenizer, model) = run.load_model(&device)?;
    let search = args
        .search
        .apply(config.decode.clone(), model.max_output_len())?;
    let exact = args.exact.config(&search)?;
    let lines = match &args.input {
        Some(path) => read_lines(path)?,
        None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .context("reading stdin")?;
            split_lines(&bytes, Path::new("<stdin>"))?
        }
    };
    let sources: Vec<Vec<u32>> = lines
        .iter()
        .map(|l| -> anyhow::Result<Vec<u32>> {
            if l.trim().is_empty() {
                return Ok(vec![]);
            }
            Ok(seqls_data::encode_source(
                &tokenizer,
                l.trim(),
                config.model.max_len,
            )?)
        })
        .collect::<Result<_, _>>()?;
    let bar = if args.input.is_some() {
        ProgressBar::new(lines.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("decoding [{bar:30}] {pos}/{len} sentences ETA {eta}")
            // Cannot fail: the progress template is a constant, checked by the decoding tests.
            .expect("template"),
    );
    let started = Instant::now();
    let translator = Translator::new(&model, &device);
    let batch_size = args.batch_size as usize;
    let mut out = String::new();
    if let Some(exact) = &exact {
        let results = translator.exact(&sources, &search, exact, None, batch_size, threads, |n| {
            bar.inc(n as u64)
        });
        for result in &results {
            out.push_str(&exact_output_line(result.as_ref(), &tokenizer, jsonl)?);
            out.push('\n');
        }
    } else {
        let nbests = translator.translate(&sources, &search, batch_size, threads, |n| {
            bar.inc(n as u64)
        });
        for nbest in &nbests {
            out.push_str(&output_line(nbest, &tokenizer, jsonl)?);
            out.push('\n');
        }
    }
    bar.finish_and_clear();
    match &args.output {
        Some(path) => write_atomic(path, out.as_bytes())?,
        None => std::io::stdout().lock().write_all(out.as_bytes())?,
    }
    if args.input.is_some() {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "decoded {} sentences in {secs:.2} s ({:.1} sentences/s, {})",
            lines.len(),
            lines.len() as f64 / secs.max(1e-9),
            match exact {
                Some(_) => format!("exact search from beam {}", search.beam_size),
                None => format!("beam {}", search.beam_size),
            }
        );
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// Run directory written by `seqls train`
    #[arg(long)]
    model: PathBuf,
    /// Source sentences
    #[arg(long)]
    src: PathBuf,
    /// Translations to score, line-aligned with --src
    #[arg(long)]
    hyp: PathBuf,
    /// Also print every token's log-probability
    #[arg(long)]
    per_token: bool,
    /// --hyp holds subword tokens separated by spaces (the `tokens` of `decode --format jsonl`; a final
    /// `</s>` is optional) instead of text, so a decoded hypothesis is scored exactly as produced
    #[arg(long)]
    hyp_tokens: bool,
    #[command(flatten)]
    device: crate::DeviceArgs,
}

/// `seqls score`: per sentence, `score<TAB>tokens<TAB>score/token` (nats, `</s>` included).
pub fn run_score(args: ScoreArgs) -> anyhow::Result<()> {
    let (device, _) = args.device.resolve()?;
    let (config, tokenizer, model) = RunDir::new(&args.model).load_model(&device)?;
    let text = seqls_data::read::read_parallel(&args.src, &args.hyp)?;
    if text.stats.skipped_empty > 0 {
        bail!(
            "{}: {} lines have an empty source or translation",
            args.hyp.display(),
            text.stats.skipped_empty
        );
    }
    let examples = if args.hyp_tokens {
        text.pairs
            .iter()
            .enumerate()
            .map(|(index, pair)| -> anyhow::Result<Example> {
                let src = seqls_data::encode_source(&tokenizer, &pair.src, config.model.max_len)?;
                let mut pieces: Vec<&str> = pair.tgt.split_whitespace().collect();
                if pieces.last() == Some(&"</s>") {
                    pieces.pop();
                }
                let tgt = pieces
                    .iter()
                    .map(|p| {
                        tokenizer.token_to_id(p).ok_or_else(|| {
                            anyhow::anyhow!(
                                "{}:{}: {p:?} is not a token of the model's vocabulary",
                                args.hyp.display(),
                                index + 1
                            )
                        })
                    })
                    .collect::<anyhow::Result<Vec<u32>>>()?;
                Ok(Example { index, src, tgt })
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    } else {
        seqls_data::encode_for_inference(&tokenizer, &text.pairs, config.model.max_len)?.examples
    };
    let mut out = String::new();
    for chunk in examples.chunks(64) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let batch = Batch::from_examples(&refs);
        for row in teacher_forced_scores(&model, &batch, 1.0, &device) {
            let total: f64 = row.iter().map(|t| t.log_prob as f64).sum();
            out.push_str(&format!(
                "{total:.6}\t{}\t{:.6}",
                row.len(),
                total / row.len() as f64
            ));
            if args.per_token {
                let lps: Vec<String> = row.iter().map(|t| format!("{:.6}", t.log_prob)).collect();
                out.push('\t');
                out.push_str(&lps.join(" "));
            }
            out.push('\n');
        }
    }
    print!("{out}");
    Ok(())
}
