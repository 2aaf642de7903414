//! Running a sweep: every job that is not finished, in order (each teacher's training, evaluations and
//! search analyses, then the students of the distillation study), or the same jobs printed as
//! shell commands.

use crate::driver::{Sweep, train_and_evaluate};
use crate::error::Result;
use crate::per_run::search_analysis::analyse;
use burn::tensor::Device;

impl Sweep {
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
}
