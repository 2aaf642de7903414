//! The sweep driver: the jobs of a sweep directory and how they run.
//!
//! A sweep directory holds `sweep.toml` (the effective config) and one run directory
//! `a<α>-s<seed>/` per (α, seed). Its jobs are one training per run and one evaluation per
//! (run, test split, beam size), written to `RUN/eval-<split>-beam<K>.json`. Every job is idempotent:
//! a finished training (`metrics.json`) or evaluation (its JSON file) is skipped, an interrupted
//! training resumes from its checkpoint. [`Sweep::plan`] prints the same jobs as shell commands, one
//! training followed by its evaluations per line group, so that they can be run anywhere.

use crate::error::{At, Result, SweepError, fail};
use crate::evaluate::evaluate;
use crate::search_analysis::{analyse, search_file};

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

/// How a student of the distillation study learns.
#[derive(Debug, Clone, PartialEq)]
pub enum StudentKind {
    /// Word-level distillation at this temperature and weight.
    Word { temperature: f64, weight: f64 },
    /// Trained on the teacher's beam-`beam` translations.
    Seq { beam: usize },
    /// Trained on the references with label smoothing `alpha`.
    Baseline { alpha: f64 },
}

impl StudentKind {
    /// `word T=2 β=0.5`, `seq beam 4`, `references`.
    pub fn label(&self) -> String {
        match self {
            StudentKind::Word {
                temperature,
                weight,
            } => format!("word T={temperature} β={weight}"),
            StudentKind::Seq { beam } => format!("seq beam {beam}"),
            StudentKind::Baseline { alpha } => format!("references α={alpha}"),
        }
    }
}

/// One student of the distillation study.
#[derive(Debug, Clone)]
pub struct StudentJob {
    /// Run directory name under `SWEEP/students/`, e.g. `word-T2-w0.5-a0.1-s1`.
    pub name: String,
    pub kind: StudentKind,
    /// The teacher's α and run (none for the baseline).
    pub teacher_alpha: Option<f64>,
    pub teacher_run: Option<RunDir>,
    pub seed: u64,
    pub run: RunDir,
    /// `SWEEP/students/<name>.toml`: the student's config.
    pub config_file: PathBuf,
    pub config: ExperimentConfig,
    /// Sequence level: the directory of the teacher's translations.
    pub data: Option<PathBuf>,
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
        seqls_data::read::write_atomic(&sweep.config_file(), sweep.config.to_toml().as_bytes())?;
        let students = sweep.students();
        if !students.is_empty() {
            let dir = sweep.dir.join("students");
            std::fs::create_dir_all(&dir).at(dir.display())?;
        }
        for student in &students {
            seqls_data::read::write_atomic(
                &student.config_file,
                student.config.to_toml().as_bytes(),
            )?;
        }
        Ok(sweep)
    }

    /// Opens a sweep directory written by [`Sweep::create`] (the corpus need not be present).
    pub fn open(dir: &Path) -> Result<Sweep> {
        let config = ExperimentConfig::load(&dir.join("sweep.toml"))?;
        Sweep::with_config(dir, config, false)
    }

    /// Checks the grid; with `check_data`, also that every test split is in the data.
    fn with_config(dir: &Path, config: ExperimentConfig, check_data: bool) -> Result<Sweep> {
        config.validate()?;
        let grid = &config.sweep;
        if grid.alphas.is_empty() || grid.seeds.is_empty() || grid.beams.is_empty() {
            fail!("the sweep needs at least one α, one seed and one beam size");
        }
        if grid.test_splits.is_empty() {
            fail!("sweep.test_splits is empty: name at least one split to evaluate on");
        }
        for seed in grid.all_seeds() {
            for &alpha in &grid.alphas {
                job_config(&config, alpha, seed).validate().map_err(|e| {
                    SweepError::Message(format!("sweep job α = {alpha}, seed {seed}: {e}"))
                })?;
            }
        }
        for &beam in &grid.beams {
            search_at(&config, beam)
                .validate()
                .map_err(|e| SweepError::Message(format!("sweep beam {beam}: {e}")))?;
        }
        if !grid.beams.contains(&grid.compare_beam) {
            fail!(
                "sweep.compare_beam = {} is not one of the sweep's beams {:?} (set sweep.compare_beam or --compare-beam)",
                grid.compare_beam,
                grid.beams
            );
        }
        let d = &config.distill;
        for kind in &d.kinds {
            if kind != "word" && kind != "seq" {
                fail!("distill.kinds: unknown kind {kind:?} (use \"word\" and/or \"seq\")");
            }
        }
        if d.kinds.iter().any(|k| k == "word")
            && (d.temperatures.is_empty() || d.weights.is_empty())
        {
            fail!("distill: word-level distillation needs at least one temperature and one weight");
        }
        if !(0.0..1.0).contains(&d.student_alpha) {
            fail!(
                "distill.student_alpha must be in [0, 1), got {}",
                d.student_alpha
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
        let sweep = Sweep {
            dir: dir.to_path_buf(),
            config,
            test_splits,
        };
        for student in sweep.students() {
            student.config.validate().map_err(|e| {
                SweepError::Message(format!("distillation student {}: {e}", student.name))
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

    /// The students of the distillation study (`[distill]`), teacher by teacher, then the baselines.
    pub fn students(&self) -> Vec<StudentJob> {
        let d = &self.config.distill;
        if d.kinds.is_empty() {
            return Vec::new();
        }
        let root = self.dir.join("students");
        let student_model = d.student.clone().unwrap_or_else(|| {
            let mut m = self.config.model.clone();
            m.d_model = 64;
            m.d_ff = 256;
            m
        });
        let make = |name: String, kind: StudentKind, teacher: Option<&TrainJob>, seed: u64| {
            let mut config = self.config.clone();
            config.name = format!("{}-{name}", self.config.name);
            config.model = student_model.clone();
            config.train.alpha = match kind {
                StudentKind::Baseline { alpha } => alpha,
                _ => d.student_alpha,
            };
            config.train.seed = seed;
            if let Some(epochs) = d.max_epochs {
                config.train.max_epochs = epochs;
            }
            config.distill = Default::default();
            let data = match (&kind, teacher) {
                (StudentKind::Seq { beam }, Some(t)) => Some(
                    root.join("data")
                        .join(format!("{}-beam{beam}", run_name(t.alpha, t.seed))),
                ),
                _ => None,
            };
            match (&kind, teacher) {
                (
                    StudentKind::Word {
                        temperature,
                        weight,
                    },
                    Some(t),
                ) => {
                    config.train.teacher = Some(t.run.root.clone());
                    config.train.kd_temperature = *temperature;
                    config.train.kd_weight = *weight;
                }
                (StudentKind::Seq { .. }, Some(_)) => {
                    // Cannot fail: `data` is set for every sequence-level student just above.
                    let dir = data.clone().expect("seq data");
                    config.data.train = vec![dir.join("train.src"), dir.join("train.tgt")];
                }
                _ => {}
            }
            StudentJob {
                run: RunDir::new(root.join(&name)),
                config_file: root.join(format!("{name}.toml")),
                name,
                kind,
                teacher_alpha: teacher.map(|t| t.alpha),
                teacher_run: teacher.map(|t| t.run.clone()),
                seed,
                data,
                config,
            }
        };
        let mut jobs = Vec::new();
        for teacher in self.trainings() {
            let from = run_name(teacher.alpha, teacher.seed);
            for kind in &d.kinds {
                if kind == "word" {
                    for &temperature in &d.temperatures {
                        for &weight in &d.weights {
                            jobs.push(make(
                                format!("word-T{temperature}-w{weight}-{from}"),
                                StudentKind::Word {
                                    temperature,
                                    weight,
                                },
                                Some(&teacher),
                                teacher.seed,
                            ));
                        }
                    }
                } else {
                    jobs.push(make(
                        format!("seq-b{}-{from}", d.seq_beam),
                        StudentKind::Seq { beam: d.seq_beam },
                        Some(&teacher),
                        teacher.seed,
                    ));
                }
            }
        }
        for &seed in &self.config.sweep.seeds {
            if d.baseline {
                jobs.push(make(
                    format!("ref-s{seed}"),
                    StudentKind::Baseline {
                        alpha: d.student_alpha,
                    },
                    None,
                    seed,
                ));
            }
            for &alpha in &d.smoothed_baselines {
                jobs.push(make(
                    format!("ref-a{alpha}-s{seed}"),
                    StudentKind::Baseline { alpha },
                    None,
                    seed,
                ));
            }
        }
        jobs
    }

    /// A student's evaluations: every test split at beam 1 and at `sweep.compare_beam`.
    pub fn student_evaluations(&self, run: &RunDir) -> Vec<(String, usize, PathBuf)> {
        let mut beams = vec![1, self.config.sweep.compare_beam];
        beams.dedup();
        let mut out = Vec::new();
        for split in &self.test_splits {
            for &beam in &beams {
                out.push((split.clone(), beam, run.eval_file(split, beam)));
            }
        }
        out
    }

    /// The shell commands of one student: its teacher's translations (sequence level), its
    /// training and its evaluations.
    pub fn student_commands(&self, job: &StudentJob) -> Vec<String> {
        let mut lines = Vec::new();
        if let (Some(data), Some(teacher), StudentKind::Seq { beam }) =
            (&job.data, &job.teacher_run, &job.kind)
        {
            lines.push(format!(
                "seqls distill-data --teacher {} --beam {beam} --out {} --quiet",
                teacher.root.display(),
                data.display()
            ));
        }
        lines.push(format!(
            "seqls train --config {} --run-dir {} --resume-or-start --quiet",
            job.config_file.display(),
            job.run.root.display()
        ));
        for (split, beam, _) in self.student_evaluations(&job.run) {
            lines.push(format!(
                "seqls eval --model {} --split {split} --beam {beam} --skip-finished",
                job.run.root.display()
            ));
        }
        lines
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

    /// Every job as shell commands, in the order [`Sweep::run`] runs them (the students of the
    /// distillation study after all their teachers).
    pub fn plan(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .trainings()
            .iter()
            .flat_map(|job| self.job_commands(job))
            .collect();
        for student in self.students() {
            lines.extend(self.student_commands(&student));
        }
        lines
    }

    /// Runs every job that is not finished, in order, printing one line per step to stderr.
    pub fn run(&self, device: &Device, threads: usize) -> Result<()> {
        for job in self.trainings() {
            let label = format!("α = {}, seed {}", job.alpha, job.seed);
            let evaluations = self.evaluations(&job.run);
            train_and_evaluate(&job.run, &job.config, &label, &evaluations, device, threads)?;
            if let Some(analysis) = &self.config.sweep.search {
                for (split, output) in self.search_analyses(&job.run) {
                    if output.exists() {
                        continue;
                    }
                    let r = analyse(&job.run, &split, analysis, device, threads)?;
                    eprintln!(
                        "   {label} {split}: search analysis ({} beam searches in {:.0} s, exact search in {:.0} s)",
                        analysis.beams.len(),
                        r.beam_seconds,
                        r.exact_seconds
                    );
                }
            }
        }
        for student in self.students() {
            self.run_student(&student, device, threads)?;
        }
        Ok(())
    }

    fn run_student(&self, job: &StudentJob, device: &Device, threads: usize) -> Result<()> {
        if let (Some(data), Some(teacher), StudentKind::Seq { beam }) =
            (&job.data, &job.teacher_run, &job.kind)
        {
            if !data.join("train.tgt").exists() {
                eprintln!(
                    "== translating the training sources with {} (beam {beam})",
                    teacher.root.display()
                );
            }
            crate::distill::distill_data(
                teacher,
                &search_at(&self.config, *beam),
                data,
                device,
                threads,
                |_, _| {},
            )?;
        }
        let label = format!("student {}", job.name);
        let evaluations = self.student_evaluations(&job.run);
        train_and_evaluate(&job.run, &job.config, &label, &evaluations, device, threads)
    }
}

/// Trains `run` with `config` unless it has finished (resuming an interrupted training), then writes
/// every evaluation of `evaluations` that does not exist yet.
fn train_and_evaluate(
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

    #[test]
    fn students_learn_from_their_teacher_with_the_student_shape_and_settings() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ExperimentConfig::synth_default();
        config.sweep.alphas = vec![0.0, 0.1];
        config.sweep.seeds = vec![3];
        config.sweep.beams = vec![1, 4];
        config.distill.kinds = vec!["word".into(), "seq".into()];
        config.distill.temperatures = vec![1.0, 2.0];
        config.distill.weights = vec![0.5];
        config.distill.student_alpha = 0.05;
        config.distill.max_epochs = Some(2);
        config.distill.smoothed_baselines = vec![0.1];
        let sweep = Sweep::create(dir.path(), config.clone()).unwrap();
        let students = sweep.students();
        let names: Vec<&str> = students.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "word-T1-w0.5-a0-s3",
                "word-T2-w0.5-a0-s3",
                "seq-b4-a0-s3",
                "word-T1-w0.5-a0.1-s3",
                "word-T2-w0.5-a0.1-s3",
                "seq-b4-a0.1-s3",
                "ref-s3",
                "ref-a0.1-s3"
            ]
        );
        for s in &students {
            let c = &s.config;
            assert_eq!((c.model.d_model, c.model.d_ff), (64, 256), "{}", s.name);
            let alpha = if s.name == "ref-a0.1-s3" { 0.1 } else { 0.05 };
            assert_eq!(c.train.alpha, alpha, "{}", s.name);
            assert_eq!(c.train.seed, 3);
            assert_eq!(c.train.max_epochs, 2);
            assert!(c.distill.kinds.is_empty(), "a student is no sweep");
            assert!(s.config_file.exists(), "{}", s.config_file.display());
        }
        let word = &students[4];
        assert_eq!(word.teacher_alpha, Some(0.1));
        assert_eq!(
            word.config.train.teacher.as_deref(),
            Some(sweep.run_dir(0.1, 3).root.as_path())
        );
        assert_eq!(
            (
                word.config.train.kd_temperature,
                word.config.train.kd_weight
            ),
            (2.0, 0.5)
        );
        let seq = &students[2];
        let data = seq.data.clone().unwrap();
        assert!(data.ends_with("students/data/a0-s3-beam4"));
        assert_eq!(
            seq.config.data.train,
            vec![data.join("train.src"), data.join("train.tgt")]
        );
        assert!(seq.config.train.teacher.is_none());
        let reference = &students[6];
        assert_eq!(reference.kind, StudentKind::Baseline { alpha: 0.05 });
        assert!(reference.teacher_run.is_none() && reference.config.data.train.is_empty());
        assert_eq!(students[7].kind, StudentKind::Baseline { alpha: 0.1 });
        assert_eq!(students[7].kind.label(), "references α=0.1");
        // Without distill.max_epochs the students train as long as the teachers.
        config.distill.max_epochs = None;
        let other = tempfile::tempdir().unwrap();
        let sweep = Sweep::create(other.path(), config.clone()).unwrap();
        assert_eq!(
            sweep.students()[0].config.train.max_epochs,
            config.train.max_epochs
        );
    }
}
