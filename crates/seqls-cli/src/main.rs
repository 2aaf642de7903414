//! `seqls`: label smoothing × beam search for neural machine translation. Thin glue over the
//! `seqls-*` libraries: flags, config merging, printing.

mod args;
mod average;
mod bench;
mod bleu;
mod block_cache;
mod compare;
mod corpus;
mod curve;
mod decode;
mod distill;
mod eval;
mod export;
mod search_analysis;
mod sweep;
mod train;

pub use args::DeviceArgs;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: block_cache::BlockCache = block_cache::BlockCache;

#[derive(Parser)]
#[command(
    name = "seqls",
    version,
    about = "Does label smoothing help beam search? Train, decode and measure BLEU and calibration across α."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a transformer translator with a label-smoothed loss
    Train(train::TrainArgs),
    /// Translate with beam search (stdin → stdout by default)
    Decode(decode::DecodeArgs),
    /// Teacher-forced log-probability of given translations
    Score(decode::ScoreArgs),
    /// Corpus BLEU / chrF like the sacrebleu command line
    Bleu(bleu::BleuArgs),
    /// What changed between systems: compare-mt's analyses, word confidence, and an HTML page
    Compare(compare::CompareArgs),
    /// Average the weights of a run's last kept checkpoints into model-average.bpk
    Average(average::AverageArgs),
    /// Write a run's weights for other tools (safetensors with PyTorch parameter names)
    Export(export::ExportArgs),
    /// Translate a teacher's training sources: data for sequence-level knowledge distillation
    DistillData(distill::DistillDataArgs),
    /// Test BLEU of a run's kept checkpoints against wall-clock minutes of training
    Curve(curve::CurveArgs),
    /// Decode a split, then BLEU, calibration and reliability diagrams into eval.json
    Eval(eval::EvalArgs),
    /// Beam search at many sizes and rankings against exact search: search errors, empty and short outputs
    SearchAnalysis(search_analysis::SearchAnalysisArgs),
    /// The α × beam comparison: train, decode and evaluate every α, then write the report
    Sweep(sweep::SweepArgs),
    /// Assemble the report of a sweep directory from finished jobs
    Report(sweep::ReportArgs),
    /// Throughput on the reference shapes, next to PyTorch / Hugging Face / CTranslate2
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Corpus tools: statistics, the synthetic corpus, fetching Multi30k
    #[command(subcommand)]
    Corpus(corpus::CorpusCommand),
}

/// Rust ignores SIGPIPE, so a write to a closed pipe (`seqls … | head -1`) returns an error that
/// `println!` turns into a panic. Restoring the default makes `seqls` end quietly there, as Unix tools do.
#[cfg(unix)]
fn quiet_on_closed_pipe() {
    // SAFETY: resets one signal disposition before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn quiet_on_closed_pipe() {}

/// The error and its causes on one line, leaving out a cause whose text the message already holds
/// (an error that prints its source, as `path: No such file or directory`, would show it twice).
fn error_line(err: &anyhow::Error) -> String {
    let mut line = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

fn main() -> ExitCode {
    block_cache::keep_freed_memory();
    quiet_on_closed_pipe();
    let matches = Cli::command()
        .mut_subcommand("train", |train| {
            train.mut_arg("resume", |resume| resume.long_help(train::resume_help()))
        })
        .get_matches_from(bleu::sacrebleu_flags(std::env::args_os()));
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Train(args) => train::run(args),
        Command::Decode(args) => decode::run(args),
        Command::Score(args) => decode::run_score(args),
        Command::Bleu(args) => bleu::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Average(args) => average::run(args),
        Command::Export(args) => export::run(args),
        Command::DistillData(args) => distill::run(args),
        Command::Curve(args) => curve::run(args),
        Command::SearchAnalysis(args) => search_analysis::run(args),
        Command::Sweep(args) => sweep::run(args),
        Command::Report(args) => sweep::run_report(args),
        Command::Corpus(command) => corpus::run(command),
        Command::Bench(command) => bench::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("seqls: error: {}", error_line(&err));
            ExitCode::from(2)
        }
    }
}
