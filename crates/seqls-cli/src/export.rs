//! `seqls export`: a run's weights for use outside seqls (see [`seqls_run::export`]).

use clap::{Args, ValueEnum};
use seqls_run::RunDir;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExportFormat {
    /// model.safetensors with fairseq/PyTorch parameter names, config.json and tokenizer.json
    Safetensors,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Run directory written by `seqls train` (the weights decode would load)
    run: PathBuf,
    /// What to write
    #[arg(long, value_enum, default_value_t = ExportFormat::Safetensors)]
    format: ExportFormat,
    /// Output directory (default: RUN/export-safetensors)
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let run = RunDir::new(&args.run);
    let out = args
        .out
        .unwrap_or_else(|| run.root.join("export-safetensors"));
    let ExportFormat::Safetensors = args.format;
    let written = seqls_run::export::export_safetensors(&run, &out, &burn::tensor::Device::flex())?;
    for p in written {
        println!("wrote {}", p.display());
    }
    Ok(())
}
