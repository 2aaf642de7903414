//! The sweep driver: the jobs of a sweep directory and how they run.
//!
//! A sweep directory holds `sweep.toml` (the effective config) and one run directory
//! `a<α>-s<seed>/` per (α, seed). Its jobs are one training per run and one evaluation per
//! (run, test split, beam size), written to `RUN/eval-<split>-beam<K>.json`. Every job is idempotent:
//! a finished training (`metrics.json`) or evaluation (its JSON file) is skipped, an interrupted
//! training resumes from its checkpoint. [`Sweep::plan`] prints the same jobs as shell commands, one
//! training followed by its evaluations per line group, so that they can be run anywhere.

use crate::evaluate::evaluate;
use anyhow::{Context, bail};
use burn::tensor::Device;
use seqls_train::{ExperimentConfig, RunDir, Start, TrainOptions};
use std::path::{Path, PathBuf};

/// Run directory name of `(α, seed)` inside a sweep.
pub fn run_name(alpha: f64, seed: u64) -> String {
    format!("a{alpha}-s{seed}")
}

/// The calibration bins of every sweep evaluation (the `seqls eval` default).
pub const SWEEP_BINS: usize = 15;

/// One training of the sweep.
#[derive(Debug, Clone)]
pub struct TrainJob {
    pub alpha: f64,
    pub seed: u64,
    pub run: RunDir,
    /// The sweep config with this job's α and seed.
    pub config: ExperimentConfig,
}

/// A sweep directory and its effective config.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub dir: PathBuf,
    pub config: ExperimentConfig,
    /// The config's `test_splits` under their corpus names (`test` → `test_2016_flickr` on Multi30k).
    pub test_splits: Vec<String>,
}

impl Sweep {
    /// Checks every job of `config` (each α and seed as a training config, each beam as a search,
    /// each test split present in the data) and writes `dir/sweep.toml`.
    pub fn create(dir: &Path, config: ExperimentConfig) -> anyhow::Result<Sweep> {
        let sweep = Sweep::with_config(dir, config, true)?;
        std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
        seqls_data::read::write_atomic(&sweep.config_file(), sweep.config.to_toml().as_bytes())?;
        Ok(sweep)
    }

    /// Opens a sweep directory written by [`Sweep::create`] (the corpus need not be present).
    pub fn open(dir: &Path) -> anyhow::Result<Sweep> {
        let config = ExperimentConfig::load(&dir.join("sweep.toml")).map_err(anyhow::Error::msg)?;
        Sweep::with_config(dir, config, false)
    }

    /// Checks the grid; with `check_data`, also that every test split is in the data.
    fn with_config(
        dir: &Path,
        config: ExperimentConfig,
        check_data: bool,
    ) -> anyhow::Result<Sweep> {
        config.validate().map_err(anyhow::Error::msg)?;
        let grid = &config.sweep;
        if grid.alphas.is_empty() || grid.seeds.is_empty() || grid.beams.is_empty() {
            bail!("the sweep needs at least one α, one seed and one beam size");
        }
        if grid.test_splits.is_empty() {
            bail!("sweep.test_splits is empty: name at least one split to evaluate on");
        }
        for &seed in &grid.seeds {
            for &alpha in &grid.alphas {
                job_config(&config, alpha, seed)
                    .validate()
                    .map_err(|e| anyhow::anyhow!("sweep job α = {alpha}, seed {seed}: {e}"))?;
            }
        }
        for &beam in &grid.beams {
            search_at(&config, beam)
                .validate()
                .map_err(|e| anyhow::anyhow!("sweep beam {beam}: {e}"))?;
        }
        if !grid.beams.contains(&grid.compare_beam) {
            bail!(
                "sweep.compare_beam = {} is not one of the sweep's beams {:?} (set sweep.compare_beam or --compare-beam)",
                grid.compare_beam,
                grid.beams
            );
        }
        let mut test_splits = Vec::new();
        for split in &grid.test_splits {
            let name = if check_data {
                config.data.resolve_split(split)?
            } else {
                config.data.split_name(split)?
            };
            if !test_splits.contains(&name) {
                test_splits.push(name);
            }
        }
        Ok(Sweep {
            dir: dir.to_path_buf(),
            config,
            test_splits,
        })
    }

    /// `dir/sweep.toml`.
    pub fn config_file(&self) -> PathBuf {
        self.dir.join("sweep.toml")
    }

    /// The run directory of `(α, seed)`.
    pub fn run_dir(&self, alpha: f64, seed: u64) -> RunDir {
        RunDir::new(self.dir.join(run_name(alpha, seed)))
    }

    /// Every training, seed by seed (so that an interrupted sweep has whole seeds first).
    pub fn trainings(&self) -> Vec<TrainJob> {
        let mut jobs = Vec::new();
        for &seed in &self.config.sweep.seeds {
            for &alpha in &self.config.sweep.alphas {
                jobs.push(TrainJob {
                    alpha,
                    seed,
                    run: self.run_dir(alpha, seed),
                    config: job_config(&self.config, alpha, seed),
                });
            }
        }
        jobs
    }

    /// The evaluations of one run: `(split, beam, output file)`.
    pub fn evaluations(&self, run: &RunDir) -> Vec<(String, usize, PathBuf)> {
        let mut out = Vec::new();
        for split in &self.test_splits {
            for &beam in &self.config.sweep.beams {
                out.push((split.clone(), beam, run.eval_file(split, beam)));
            }
        }
        out
    }

    /// The shell commands of one training job and its evaluations (`seqls` on the PATH).
    pub fn job_commands(&self, job: &TrainJob) -> Vec<String> {
        let mut lines = vec![format!(
            "seqls train --config {} --alpha {} --seed {} --run-dir {} --resume-or-start --quiet",
            self.config_file().display(),
            job.alpha,
            job.seed,
            job.run.root.display()
        )];
        for (split, beam, _) in self.evaluations(&job.run) {
            lines.push(format!(
                "seqls eval --model {} --split {split} --beam {beam} --skip-finished",
                job.run.root.display()
            ));
        }
        lines
    }

    /// Every job as shell commands, in the order [`Sweep::run`] runs them.
    pub fn plan(&self) -> Vec<String> {
        self.trainings()
            .iter()
            .flat_map(|job| self.job_commands(job))
            .collect()
    }

    /// Runs every job that is not finished, in order, printing one line per step to stderr.
    pub fn run(&self, device: &Device, threads: usize) -> anyhow::Result<()> {
        for job in self.trainings() {
            if !job.run.metrics().exists() {
                eprintln!(
                    "== training α = {}, seed {} → {}",
                    job.alpha,
                    job.seed,
                    job.run.root.display()
                );
                let options = TrainOptions {
                    run_dir: job.run.root.clone(),
                    start: Start::ResumeOrStart,
                    quiet: false,
                    device: device.clone(),
                    threads,
                };
                seqls_train::train(&job.config, &options).map_err(anyhow::Error::msg)?;
            }
            for (split, beam, output) in self.evaluations(&job.run) {
                if output.exists() {
                    continue;
                }
                let search = search_at(&job.config, beam);
                let r = evaluate(
                    &job.run, &split, &search, SWEEP_BINS, &output, device, threads,
                )?;
                eprintln!(
                    "   α = {} seed {} {split} beam {beam}: BLEU {:.2}, ECE {:.4}",
                    job.alpha, job.seed, r.bleu.score, r.teacher_forced.with_eos.ece
                );
            }
        }
        Ok(())
    }
}

/// The sweep config with α and seed set.
fn job_config(config: &ExperimentConfig, alpha: f64, seed: u64) -> ExperimentConfig {
    let mut job = config.clone();
    job.train.alpha = alpha;
    job.train.seed = seed;
    job
}

/// The config's search with beam size `beam`, best hypothesis only.
pub fn search_at(config: &ExperimentConfig, beam: usize) -> seqls_decode::SearchConfig {
    seqls_decode::SearchConfig {
        beam_size: beam,
        nbest: 1,
        ..config.decode.clone()
    }
}
