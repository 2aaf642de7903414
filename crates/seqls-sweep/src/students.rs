//! The students of a sweep's distillation study (`[distill]`): for every teacher run, word-level
//! students at each temperature and a sequence-level student (on the teacher's translations of its
//! training sources), then the baselines without a teacher; their jobs, commands and evaluations.

use crate::driver::{State, Sweep, TrainJob, run_name, search_at, train_and_evaluate};
use crate::error::Result;

use burn::tensor::Device;
use seqls_run::{ExperimentConfig, RunDir};
use std::path::PathBuf;

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

impl Sweep {
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
            if let Some(average_last) = d.average_last {
                config.train.average_last = average_last;
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

    pub(crate) fn run_student(
        &self,
        job: &StudentJob,
        device: &Device,
        threads: usize,
    ) -> Result<()> {
        if let (Some(data), Some(teacher), StudentKind::Seq { beam }) =
            (&job.data, &job.teacher_run, &job.kind)
        {
            if !data.join("train.tgt").exists() {
                eprintln!(
                    "== translating the training sources with {} (beam {beam})",
                    teacher.root.display()
                );
            }
            crate::per_run::distill_data::distill_data(
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

impl Sweep {
    /// Where every student of the distillation study stands, in job order, from its run directory and
    /// its lock (the same states as the teachers' in [`crate::slurm::status`], without Slurm's queue).
    pub fn student_status(&self) -> Vec<(StudentJob, State)> {
        self.students()
            .into_iter()
            .map(|job| {
                let finished = job.run.metrics().exists()
                    && self
                        .student_evaluations(&job.run)
                        .iter()
                        .all(|(_, _, p)| p.exists());
                let state = if finished {
                    State::Done
                } else if let Some(holder) = seqls_run::RunLock::holder(&job.run.root) {
                    State::Running(holder)
                } else if job.run.checkpoint().exists() {
                    State::Interrupted
                } else {
                    State::NotStarted
                };
                (job, state)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        config.distill.average_last = Some(1);
        config.train.keep_last = 2;
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
            assert_eq!(c.train.average_last, 1);
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
        // Without distill.max_epochs and distill.average_last the students train and average as
        // the teachers do.
        config.distill.max_epochs = None;
        config.distill.average_last = None;
        let other = tempfile::tempdir().unwrap();
        let sweep = Sweep::create(other.path(), config.clone()).unwrap();
        let train = &sweep.students()[0].config.train;
        assert_eq!(
            (train.max_epochs, train.average_last),
            (config.train.max_epochs, config.train.average_last)
        );
    }
}
