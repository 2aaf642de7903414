//! `seqls average`: checkpoint averaging (fairseq's `average_checkpoints.py`).

use clap::Args;
use seqls_run::{RunDir, RunLock};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct AverageArgs {
    /// Run directory trained with train.keep_last > 0
    run: PathBuf,
    /// Average the weights of the last N kept checkpoints (update-<N>.bpk)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    last: u32,
}

/// Writes `RUN/model-average.bpk`, which `decode`, `eval` and `score` then load (delete it to use
/// `model-best.bpk` again).
pub fn run(args: AverageArgs) -> anyhow::Result<()> {
    let run = RunDir::new(&args.run);
    if !run.root.is_dir() {
        anyhow::bail!("{}: no such run directory", run.root.display());
    }
    let _lock = RunLock::acquire(&run.root)?;
    let kept = run.kept();
    let last = args.last as usize;
    if kept.len() < last {
        anyhow::bail!(
            "{}: --last {last} needs {last} kept checkpoints, found {} (train with train.keep_last ≥ {last})",
            run.root.display(),
            kept.len()
        );
    }
    let files: Vec<PathBuf> = kept[kept.len() - last..]
        .iter()
        .map(|(_, p)| p.clone())
        .collect();
    let bytes = seqls_run::run::average_weights(&files)?;
    seqls_data::write::write_atomic(&run.average_model(), &bytes)?;
    let names: Vec<String> = files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .collect();
    println!(
        "averaged {} → {} (decode, eval and score now load it; delete it to use model-best.bpk)",
        names.join(" "),
        run.average_model().display()
    );
    Ok(())
}
