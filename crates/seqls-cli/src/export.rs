//! `seqls export`: a run's weights for use outside seqls (see [`seqls_run::export`]).
//!
//! `--format ctranslate2` goes through the safetensors export and `bench/export_ct2.py`, which
//! builds the model with the `ctranslate2` Python package's own spec API (its binary format is
//! versioned by that package, whose `validate()` checks every shape) rather than writing the format
//! here. Both are staged in temporary directories beside `--out`, which appears only when complete.

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use seqls_run::RunDir;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExportFormat {
    /// model.safetensors with fairseq/PyTorch parameter names, config.json and tokenizer.json
    Safetensors,
    /// A CTranslate2 model directory (model.bin, config.json, shared_vocabulary.json) with
    /// tokenizer.json, for `ctranslate2.Translator` (needs Python with ctranslate2, safetensors,
    /// tokenizers, numpy: --python)
    Ctranslate2,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Run directory written by `seqls train` (the weights decode would load)
    run: PathBuf,
    /// What to write
    #[arg(long, value_enum, default_value_t = ExportFormat::Safetensors)]
    format: ExportFormat,
    /// Output directory (default: RUN/export-safetensors or RUN/export-ctranslate2)
    #[arg(long)]
    out: Option<PathBuf>,
    /// Python with ctranslate2, safetensors, tokenizers and numpy (--format ctranslate2)
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// Directory holding export_ct2.py (default: `bench/` of the current directory, else of the
    /// checkout this binary was built from)
    #[arg(long)]
    reference_dir: Option<PathBuf>,
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let run = RunDir::new(&args.run);
    let device = burn::tensor::Device::flex();
    match args.format {
        ExportFormat::Safetensors => {
            let out = args
                .out
                .unwrap_or_else(|| run.root.join("export-safetensors"));
            for p in seqls_run::export::export_safetensors(&run, &out, &device)? {
                println!("wrote {}", p.display());
            }
        }
        ExportFormat::Ctranslate2 => {
            let out = args
                .out
                .unwrap_or_else(|| run.root.join("export-ctranslate2"));
            ctranslate2(&args.run, &out, &args.python, args.reference_dir)?;
            println!(
                "wrote {} (CTranslate2 model and tokenizer.json)",
                out.display()
            );
        }
    }
    Ok(())
}

/// The CTranslate2 model directory of `run` at `out` (which must not exist), through the
/// safetensors export and `export_ct2.py` (in `reference_dir` or `bench/`) under `python`.
pub fn ctranslate2(
    run: &Path,
    out: &Path,
    python: &Path,
    reference_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    if out.exists() {
        bail!("{} exists: remove it or pass another --out", out.display());
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| parent.display().to_string())?;
    let staging = |what: &str| {
        tempfile::Builder::new()
            .prefix(&format!(".{what}-"))
            .tempdir_in(&parent)
            .with_context(|| format!("a temporary directory in {}", parent.display()))
    };
    let (weights, model) = (
        staging("export-safetensors")?,
        staging("export-ctranslate2")?,
    );
    let device = burn::tensor::Device::flex();
    seqls_run::export::export_safetensors(&RunDir::new(run), weights.path(), &device)?;
    let script = crate::args::bench_dir(reference_dir).join("export_ct2.py");
    convert(python, &script, weights.path(), model.path())?;
    let staged = model.keep();
    std::fs::rename(&staged, out)
        .with_context(|| format!("moving {} to {}", staged.display(), out.display()))
}

/// Runs `script EXPORT OUT` under `python`, one clear error if it fails.
fn convert(python: &Path, script: &Path, export: &Path, out: &Path) -> anyhow::Result<()> {
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(export)
        .arg(out)
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        bail!(
            "{} {} failed: {last} (it needs `pip install ctranslate2 safetensors tokenizers numpy`; --python names the interpreter)",
            python.display(),
            script.display()
        );
    }
    Ok(())
}
