//! The sweep driver: the jobs of a sweep directory and how they run.
//!
//! A sweep directory holds `sweep.toml` (the effective config) and one run directory
//! `a<α>-s<seed>/` per (α, seed). Its jobs are one training per run and one evaluation per
//! (run, test split, beam size), written to `RUN/eval-<split>-beam<K>.json`. Every job is idempotent:
//! a finished training (`metrics.json`) or evaluation (its JSON file) is skipped, an interrupted
//! training resumes from its checkpoint. [`Sweep::plan`] prints the same jobs as shell commands, one
//! training followed by its evaluations per line group, so that they can be run anywhere.

use crate::error::{Result, SweepError};
use crate::per_run::evaluate::evaluate;
use crate::per_run::search_analysis::search_file;
use seqls_run::error::At;

use burn::tensor::Device;
use seqls_run::{ExperimentConfig, RunDir};
use seqls_train::{Start, TrainOptions};
use std::path::{Path, PathBuf};

/// Run directory name of `(α, seed)` inside a sweep.
pub fn run_name(alpha: f64, seed: u64) -> String {
    format!("a{alpha}-s{seed}")
}

/// One training of the sweep.
#[derive(Debug, Clone)]
pub struct TrainJob {
    pub alpha: f64,
    pub seed: u64,
    pub run: RunDir,
    /// The sweep config with this job's α and seed.
    pub config: ExperimentConfig,
}

/// Where one job (a training with its evaluations, or a student) stands.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Trained and every evaluation written.
    Done,
    /// Training or evaluating now (Slurm says so, or a process holds the run's lock).
    Running(String),
    /// Queued in Slurm (with the reason).
    Pending(String),
    /// Its last Slurm task ended without finishing the job.
    Failed(String),
    /// Started (a checkpoint exists) but neither running nor queued.
    Interrupted,
    /// Nothing done yet and not queued.
    NotStarted,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::Done => write!(f, "done"),
            State::Running(d) => write!(f, "running ({d})"),
            State::Pending(d) => write!(f, "pending ({d})"),
            State::Failed(d) => write!(f, "failed ({d})"),
            State::Interrupted => write!(f, "interrupted (has a checkpoint)"),
            State::NotStarted => write!(f, "not started"),
        }
    }
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
    pub fn create(dir: &Path, config: ExperimentConfig) -> Result<Sweep> {
        let sweep = Sweep::with_config(dir, config, true)?;
        std::fs::create_dir_all(dir).at(dir.display())?;
        seqls_data::write::write_atomic(&sweep.config_file(), sweep.config.to_toml().as_bytes())?;
        let students = sweep.students();
        if !students.is_empty() {
            let dir = sweep.dir.join("students");
            std::fs::create_dir_all(&dir).at(dir.display())?;
        }
        for student in &students {
            seqls_data::write::write_atomic(
                &student.config_file,
                student.config.to_toml().as_bytes(),
            )?;
        }
        Ok(sweep)
    }

    /// Opens a sweep directory written by [`Sweep::create`] (the corpus need not be present).
    pub fn open(dir: &Path) -> Result<Sweep> {
        let file = dir.join("sweep.toml");
        if !file.is_file() {
            return Err(SweepError::NotASweep(dir.to_path_buf()));
        }
        let config = ExperimentConfig::load(&file)?;
        Sweep::with_config(dir, config, false)
    }

    /// Checks the grid; with `check_data`, also that every test split is in the data.
    fn with_config(dir: &Path, config: ExperimentConfig, check_data: bool) -> Result<Sweep> {
        config.validate()?;
        let grid = &config.sweep;
        if grid.alphas.is_empty() || grid.seeds.is_empty() || grid.beams.is_empty() {
            return Err(SweepError::EmptyGrid);
        }
        if grid.test_splits.is_empty() {
            return Err(SweepError::NoTestSplits);
        }
        for seed in grid.all_seeds() {
            for &alpha in &grid.alphas {
                job_config(&config, alpha, seed)
                    .validate()
                    .map_err(|source| SweepError::JobConfig {
                        alpha,
                        seed,
                        source: Box::new(source),
                    })?;
            }
        }
        for &beam in &grid.beams {
            search_at(&config, beam)
                .validate()
                .map_err(|source| SweepError::BeamConfig { beam, source })?;
        }
        if !grid.beams.contains(&grid.compare_beam) {
            return Err(SweepError::CompareBeam {
                compare_beam: grid.compare_beam,
                beams: grid.beams.clone(),
            });
        }
        let d = &config.distill;
        for kind in &d.kinds {
            if kind != "word" && kind != "seq" {
                return Err(SweepError::DistillKind(kind.clone()));
            }
        }
        if d.kinds.iter().any(|k| k == "word")
            && (d.temperatures.is_empty() || d.weights.is_empty())
        {
            return Err(SweepError::DistillWordGrid);
        }
        if !(0.0..1.0).contains(&d.student_alpha) {
            return Err(SweepError::StudentAlpha(d.student_alpha));
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
        let sweep = Sweep {
            dir: dir.to_path_buf(),
            config,
            test_splits,
        };
        for student in sweep.students() {
            student
                .config
                .validate()
                .map_err(|source| SweepError::StudentConfig {
                    student: student.name.clone(),
                    source: Box::new(source),
                })?;
        }
        Ok(sweep)
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
        let grid = &self.config.sweep;
        for seed in grid.all_seeds() {
            for &alpha in &grid.alphas {
                if !grid.seeds_for(alpha).contains(&seed) {
                    continue;
                }
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
        for (split, _) in self.search_analyses(&job.run) {
            lines.push(format!(
                "seqls search-analysis --model {} --split {split} --skip-finished",
                job.run.root.display()
            ));
        }
        lines
    }

    /// The search analyses of one run (with `[sweep.search]`): `(split, output file)`.
    pub fn search_analyses(&self, run: &RunDir) -> Vec<(String, PathBuf)> {
        if self.config.sweep.search.is_none() {
            return vec![];
        }
        self.test_splits
            .iter()
            .map(|split| (split.clone(), search_file(run, split)))
            .collect()
    }
}

/// Trains `run` with `config` unless it has finished (resuming an interrupted training), then writes
/// every evaluation of `evaluations` that does not exist yet.
pub(crate) fn train_and_evaluate(
    run: &RunDir,
    config: &ExperimentConfig,
    label: &str,
    evaluations: &[(String, usize, PathBuf)],
    device: &Device,
    threads: usize,
) -> Result<()> {
    if !run.metrics().exists() {
        eprintln!("== training {label} → {}", run.root.display());
        let options = TrainOptions {
            run_dir: run.root.clone(),
            start: Start::ResumeOrStart,
            quiet: false,
            device: device.clone(),
            threads,
        };
        seqls_train::train(config, &options)?;
    }
    for (split, beam, output) in evaluations {
        if output.exists() {
            continue;
        }
        let search = search_at(config, *beam);
        let r = evaluate(
            run,
            split,
            &search,
            seqls_eval::calibration::DEFAULT_BINS,
            output,
            device,
            threads,
        )?;
        eprintln!(
            "   {label} {split} beam {beam}: BLEU {:.2}, ECE {:.4}",
            r.bleu.score, r.teacher_forced.with_eos.ece
        );
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_seeds_give_some_alphas_other_seeds_seed_by_seed() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ExperimentConfig::synth_default();
        config.sweep.alphas = vec![0.0, 0.05, 0.1];
        config.sweep.seeds = vec![1, 2, 3];
        config.sweep.alpha_seeds = vec![seqls_run::AlphaSeeds {
            alpha: 0.05,
            seeds: vec![1, 4],
        }];
        let sweep = Sweep::create(dir.path(), config.clone()).unwrap();
        let names: Vec<String> = sweep
            .trainings()
            .iter()
            .map(|j| run_name(j.alpha, j.seed))
            .collect();
        assert_eq!(
            names,
            [
                "a0-s1", "a0.05-s1", "a0.1-s1", "a0-s2", "a0.1-s2", "a0-s3", "a0.1-s3", "a0.05-s4"
            ]
        );
        config.sweep.alpha_seeds[0].alpha = 0.3;
        assert!(
            Sweep::create(dir.path(), config).is_err(),
            "α = 0.3 is not in the grid"
        );
    }
}
