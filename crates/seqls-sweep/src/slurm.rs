//! `seqls sweep --backend slurm`: the sweep's jobs as one Slurm job array plus a report job.
//!
//! Array task `i` is training job `i` of [`Sweep::trainings`] followed by its evaluations: the same
//! commands as [`Sweep::plan`], with `--threads $SLURM_CPUS_PER_TASK`. Every command is idempotent
//! (`--resume-or-start`, `--skip-finished`), and the array is submitted with `--requeue`, so a
//! preempted or requeued task continues from its checkpoint instead of starting again; the run
//! directory's lock keeps two tasks from writing one run. The report job runs `seqls report` once
//! the whole array has succeeded (`--dependency=afterok`).
//!
//! Files, in `SWEEP/slurm/`: `array.sbatch` and `report.sbatch` (the generated scripts),
//! `logs/` (one output file per task, appended across requeues), `submitted.json` (the job ids of
//! every submission, read by [`status`]).

use crate::driver::{State, Sweep, TrainJob};
use crate::error::{Result, SweepError};
use seqls_run::error::At;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The generated batch scripts.
#[derive(Debug, Clone)]
pub struct Scripts {
    pub array: PathBuf,
    pub report: PathBuf,
    /// The array task ids the array script runs (`#SBATCH --array`); may be empty.
    pub tasks: Vec<usize>,
    /// `students.sbatch`: the `[distill]` students (task i = student i of [`Sweep::students`]), run
    /// after the teachers' array; `None` without students to run.
    pub students: Option<PathBuf>,
    pub student_tasks: Vec<usize>,
}

/// One submission, as recorded in `submitted.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// The teachers' array job (empty when every teacher was already finished).
    pub array_job: String,
    pub report_job: String,
    pub tasks: Vec<usize>,
    /// The students' array job, which starts once the teachers' array has succeeded.
    #[serde(default)]
    pub students_job: Option<String>,
    #[serde(default)]
    pub student_tasks: Vec<usize>,
}

fn slurm_dir(sweep: &Sweep) -> PathBuf {
    sweep.dir.join("slurm")
}

/// Single-quotes `s` for the shell.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Whether `job` has trained and written every evaluation and search analysis.
pub fn finished(sweep: &Sweep, job: &TrainJob) -> bool {
    job.run.metrics().exists()
        && sweep.evaluations(&job.run).iter().all(|e| e.2.exists())
        && sweep.search_analyses(&job.run).iter().all(|e| e.1.exists())
}

/// Writes `array.sbatch` (tasks `tasks`) and `report.sbatch` into `SWEEP/slurm/`, running the
/// binary `seqls`. Paths in the scripts are absolute.
pub fn write_scripts(
    sweep: &Sweep,
    seqls: &Path,
    tasks: &[usize],
    student_tasks: &[usize],
) -> Result<Scripts> {
    let slurm = &sweep.config.sweep.slurm;
    let dir = std::path::absolute(slurm_dir(sweep))?;
    std::fs::create_dir_all(dir.join("logs")).at(dir.display())?;
    let sweep_dir = std::path::absolute(&sweep.dir)?;
    let absolute = Sweep {
        dir: sweep_dir.clone(),
        ..sweep.clone()
    };
    let name = format!("seqls-{}", sweep.config.name);
    let mut head = String::from("#!/bin/bash\n");
    let mut directive = |line: String| head.push_str(&format!("#SBATCH {line}\n"));
    directive(format!("--job-name={name}"));
    if let Some(p) = &slurm.partition {
        directive(format!("--partition={p}"));
    }
    if let Some(a) = &slurm.account {
        directive(format!("--account={a}"));
    }
    let common_end = |head: &mut String| {
        for line in &slurm.extra {
            let line = line.trim();
            let line = line.strip_prefix("#SBATCH").unwrap_or(line).trim();
            head.push_str(&format!("#SBATCH {line}\n"));
        }
    };
    let array_head = |tasks: &[usize], what: &str| -> String {
        let mut array = head.clone();
        let task_list: Vec<String> = tasks.iter().map(|t| t.to_string()).collect();
        for line in [
            format!("--array={}", task_list.join(",")),
            "--ntasks=1".into(),
            format!("--cpus-per-task={}", slurm.cpus_per_task),
            format!("--mem={}", slurm.mem),
            format!("--time={}", slurm.time),
            "--requeue".into(),
            "--open-mode=append".into(),
            format!("--output={}/logs/%x-{what}%A_%a.out", dir.display()),
        ] {
            array.push_str(&format!("#SBATCH {line}\n"));
        }
        if let Some(g) = slurm.gpus {
            array.push_str(&format!("#SBATCH --gres=gpu:{g}\n"));
        }
        array
    };
    let mut array = array_head(tasks, "");
    common_end(&mut array);
    let mut env = format!(
        "set -euo pipefail\nSEQLS={}\n",
        quote(&seqls.display().to_string())
    );
    if sweep.config.data.corpus == seqls_data::Corpus::Multi30k {
        let data = std::path::absolute(sweep.config.data.multi30k_dir()?)?;
        env.push_str(&format!(
            "export SEQLS_DATA_DIR={}\n",
            quote(&data.display().to_string())
        ));
    }
    array.push_str(&format!(
        "\n# Generated by `seqls sweep --backend slurm` for {}: task i = training job i of the sweep\n\
         # and its evaluations. Every command skips finished work and resumes from a checkpoint, so a\n\
         # requeued task continues where it stopped.\n",
        sweep_dir.display()
    ));
    array.push_str(&env);
    let device = if slurm.gpus.is_some() {
        " --device wgpu"
    } else {
        ""
    };
    let jobs = absolute.trainings();
    let mut cases = Vec::new();
    for &t in tasks {
        let Some(job) = jobs.get(t) else {
            return Err(SweepError::NoSuchTask {
                array: "array",
                task: t,
                jobs: jobs.len(),
            });
        };
        let comment = format!("α = {}, seed {}", job.alpha, job.seed);
        cases.push((t, comment, absolute.job_commands(job)));
    }
    array.push_str(&case_block("task", slurm.cpus_per_task, &cases, device));

    let students_script = if student_tasks.is_empty() {
        None
    } else {
        let mut script = array_head(student_tasks, "student-");
        common_end(&mut script);
        script.push_str(&format!(
            "\n# Generated by `seqls sweep --backend slurm` for {}: task i = distillation student i\n\
             # (its teacher's translations for sequence level, its training, its evaluations), submitted\n\
             # to start once the teachers' array has succeeded; every command skips finished work.\n",
            sweep_dir.display()
        ));
        script.push_str(&env);
        let students = absolute.students();
        let mut cases = Vec::new();
        for &t in student_tasks {
            let Some(job) = students.get(t) else {
                return Err(SweepError::NoSuchTask {
                    array: "student",
                    task: t,
                    jobs: students.len(),
                });
            };
            cases.push((t, job.name.clone(), absolute.student_commands(job)));
        }
        script.push_str(&case_block("student", slurm.cpus_per_task, &cases, device));
        Some(script)
    };

    let mut report = head;
    for line in [
        "--ntasks=1".to_string(),
        "--cpus-per-task=1".into(),
        format!("--mem={}", slurm.mem),
        "--time=00:30:00".into(),
        format!("--output={}/logs/%x-report-%j.out", dir.display()),
    ] {
        report.push_str(&format!("#SBATCH {line}\n"));
    }
    common_end(&mut report);
    report.push_str(&format!(
        "\n# Generated by `seqls sweep --backend slurm`: the report of {}, submitted to run once every\n\
         # array task has succeeded.\n",
        sweep_dir.display()
    ));
    report.push_str(&env);
    report.push_str(&format!(
        "\"$SEQLS\" report {} --threads 1\n",
        quote(&sweep_dir.display().to_string())
    ));

    let scripts = Scripts {
        array: dir.join("array.sbatch"),
        report: dir.join("report.sbatch"),
        tasks: tasks.to_vec(),
        students: students_script
            .as_ref()
            .map(|_| dir.join("students.sbatch")),
        student_tasks: student_tasks.to_vec(),
    };
    if !tasks.is_empty() {
        seqls_data::write::write_atomic(&scripts.array, array.as_bytes())?;
    }
    if let (Some(path), Some(text)) = (&scripts.students, &students_script) {
        seqls_data::write::write_atomic(path, text.as_bytes())?;
    }
    seqls_data::write::write_atomic(&scripts.report, report.as_bytes())?;
    Ok(scripts)
}

/// The body of an array script: the thread count, a start line for the log, and one `case` branch per
/// task running its commands (`seqls` → `"$SEQLS"`, with `--threads` and `device_flag` appended).
fn case_block(
    what: &str,
    default_cpus: usize,
    cases: &[(usize, String, Vec<String>)],
    device_flag: &str,
) -> String {
    let mut out = format!(
        "THREADS=${{SLURM_CPUS_PER_TASK:-{default_cpus}}}\necho \"{what} $SLURM_ARRAY_TASK_ID (restart ${{SLURM_RESTART_COUNT:-0}}) on $(hostname) at $(date -Is)\"\ncase \"$SLURM_ARRAY_TASK_ID\" in\n"
    );
    for (task, comment, commands) in cases {
        out.push_str(&format!("{task})  # {comment}\n"));
        for line in commands {
            let line = line.replacen("seqls ", "\"$SEQLS\" ", 1);
            out.push_str(&format!("    {line} --threads \"$THREADS\"{device_flag}\n"));
        }
        out.push_str("    ;;\n");
    }
    out.push_str(&format!(
        "*)\n    echo \"no {what} for array task $SLURM_ARRAY_TASK_ID\" >&2\n    exit 1\n    ;;\nesac\n"
    ));
    out
}

/// The tasks to submit: every job that is not finished and not running now.
pub fn unfinished_tasks(sweep: &Sweep) -> Vec<usize> {
    let states = status(sweep);
    states
        .iter()
        .enumerate()
        .filter(|(_, (_, s))| !matches!(s, State::Done | State::Running(_) | State::Pending(_)))
        .map(|(i, _)| i)
        .collect()
}

fn run_sbatch(args: &[&str]) -> Result<String> {
    let out = Command::new("sbatch")
        .args(args)
        .output()
        .at("running sbatch (is Slurm installed and on the PATH?)")?;
    if !out.status.success() {
        return Err(SweepError::Sbatch {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // `--parsable` prints `jobid` or `jobid;cluster`.
    Ok(text
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string())
}

/// Submits the teachers' array, the students' array (after the teachers') and the report job that
/// depends on both; records them in `submitted.json`.
pub fn submit(sweep: &Sweep, scripts: &Scripts) -> Result<Submission> {
    if scripts.tasks.is_empty() && scripts.students.is_none() {
        return Err(SweepError::NothingToSubmit);
    }
    let array_job = if scripts.tasks.is_empty() {
        String::new()
    } else {
        run_sbatch(&["--parsable", &scripts.array.display().to_string()])?
    };
    let students_job = match &scripts.students {
        None => None,
        Some(path) => {
            let mut args = vec!["--parsable".to_string()];
            if !array_job.is_empty() {
                args.push(format!("--dependency=afterok:{array_job}"));
                args.push("--kill-on-invalid-dep=yes".into());
            }
            args.push(path.display().to_string());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Some(run_sbatch(&args)?)
        }
    };
    let after: Vec<&str> = [Some(array_job.as_str()), students_job.as_deref()]
        .into_iter()
        .flatten()
        .filter(|j| !j.is_empty())
        .collect();
    let report_job = run_sbatch(&[
        "--parsable",
        &format!("--dependency=afterok:{}", after.join(":")),
        "--kill-on-invalid-dep=yes",
        &scripts.report.display().to_string(),
    ])?;
    let submission = Submission {
        array_job,
        report_job,
        tasks: scripts.tasks.clone(),
        students_job,
        student_tasks: scripts.student_tasks.clone(),
    };
    let mut all = submissions(sweep);
    all.push(submission.clone());
    seqls_data::write::write_atomic(
        &slurm_dir(sweep).join("submitted.json"),
        serde_json::to_string_pretty(&all)?.as_bytes(),
    )?;
    Ok(submission)
}

/// The students to submit: every one that is not finished, not running and not queued in the
/// latest students' array that holds it.
pub fn unfinished_students(sweep: &Sweep) -> Vec<usize> {
    let submitted = submissions(sweep);
    let mut queued = std::collections::HashSet::new();
    for s in &submitted {
        if let Some(job) = &s.students_job
            && let Some(lines) = query("squeue", &["-h", "-r", "-j", job, "-o", "%i %T"], ' ')
        {
            queued.extend(lines.into_iter().map(|(id, _)| id));
        }
    }
    sweep
        .students()
        .iter()
        .enumerate()
        .filter(|(i, job)| {
            let finished = job.run.metrics().exists()
                && sweep
                    .student_evaluations(&job.run)
                    .iter()
                    .all(|(_, _, p)| p.exists());
            let in_queue = submitted.iter().rev().any(|s| {
                s.student_tasks.contains(i)
                    && s.students_job
                        .as_ref()
                        .is_some_and(|j| queued.contains(&format!("{j}_{i}")))
            });
            !finished && !in_queue && seqls_run::RunLock::holder(&job.run.root).is_none()
        })
        .map(|(i, _)| i)
        .collect()
}

/// Every recorded submission, oldest first (empty when none).
pub fn submissions(sweep: &Sweep) -> Vec<Submission> {
    std::fs::read_to_string(slurm_dir(sweep).join("submitted.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// `(array task, state)` lines of a Slurm query, or `None` when the command is missing or fails.
fn query(program: &str, args: &[&str], separator: char) -> Option<Vec<(String, String)>> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (id, rest) = l.trim().split_once(separator)?;
                Some((id.to_string(), rest.trim().to_string()))
            })
            .collect(),
    )
}

/// Where every training job of the sweep stands, in job order, from its run directory, its lock
/// and (when they answer) `squeue` and `sacct` for the latest submission of its task.
pub fn status(sweep: &Sweep) -> Vec<(TrainJob, State)> {
    let submitted = submissions(sweep);
    let mut slurm_states = std::collections::HashMap::new();
    for s in &submitted {
        // Later submissions override earlier ones.
        if let Some(lines) = query(
            "sacct",
            &["-n", "-P", "-X", "-j", &s.array_job, "-o", "JobID,State"],
            '|',
        ) {
            for (id, state) in lines {
                slurm_states.insert(id, (state, false));
            }
        }
        if let Some(lines) = query(
            "squeue",
            &["-h", "-r", "-j", &s.array_job, "-o", "%i %T %r"],
            ' ',
        ) {
            for (id, state) in lines {
                slurm_states.insert(id, (state, true));
            }
        }
    }
    sweep
        .trainings()
        .into_iter()
        .enumerate()
        .map(|(i, job)| {
            let state = if finished(sweep, &job) {
                State::Done
            } else {
                let last = submitted.iter().rev().find(|s| s.tasks.contains(&i));
                let slurm = last.and_then(|s| slurm_states.get(&format!("{}_{i}", s.array_job)));
                match slurm {
                    Some((state, true)) if state.starts_with("RUNNING") => State::Running(format!(
                        "Slurm job {}_{i}",
                        last.map_or("", |s| &s.array_job)
                    )),
                    Some((state, true)) => State::Pending(state.to_lowercase()),
                    _ => match seqls_run::RunLock::holder(&job.run.root) {
                        Some(holder) => State::Running(holder),
                        None => match (last, slurm) {
                            (Some(s), Some((state, false))) => State::Failed(format!(
                                "Slurm job {}_{i} {}; log {}",
                                s.array_job,
                                state.to_lowercase(),
                                slurm_dir(sweep).join("logs").display()
                            )),
                            (Some(s), None) => State::Failed(format!(
                                "Slurm job {}_{i} ended unfinished; log in {}",
                                s.array_job,
                                slurm_dir(sweep).join("logs").display()
                            )),
                            _ if job.run.checkpoint().exists() => State::Interrupted,
                            _ => State::NotStarted,
                        },
                    },
                }
            };
            (job, state)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_keeps_plain_words_and_quotes_the_rest() {
        assert_eq!(quote("/a/b-c_1.toml"), "/a/b-c_1.toml");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn status_reads_the_run_directories_and_the_recorded_submissions() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = seqls_run::ExperimentConfig::synth_default();
        config.sweep.alphas = vec![0.0, 0.1, 0.2, 0.3];
        config.sweep.beams = vec![1, 4];
        let sweep = Sweep::create(dir.path(), config).unwrap();
        let jobs = sweep.trainings();
        // Job 0 finished, job 1 interrupted, job 2 submitted but gone from the queue, job 3 untouched.
        std::fs::create_dir_all(&jobs[0].run.root).unwrap();
        std::fs::write(jobs[0].run.metrics(), "{}").unwrap();
        for (_, _, eval) in sweep.evaluations(&jobs[0].run) {
            std::fs::write(eval, "{}").unwrap();
        }
        std::fs::create_dir_all(&jobs[1].run.root).unwrap();
        std::fs::write(jobs[1].run.checkpoint(), "x").unwrap();
        std::fs::create_dir_all(dir.path().join("slurm")).unwrap();
        std::fs::write(
            dir.path().join("slurm/submitted.json"),
            r#"[{"array_job": "999999", "report_job": "1000000", "tasks": [2]}]"#,
        )
        .unwrap();
        let states: Vec<State> = status(&sweep).into_iter().map(|(_, s)| s).collect();
        assert_eq!(states[0], State::Done);
        assert_eq!(states[1], State::Interrupted);
        assert!(
            matches!(&states[2], State::Failed(d) if d.contains("999999_2")),
            "{:?}",
            states[2]
        );
        assert_eq!(states[3], State::NotStarted);
        assert_eq!(unfinished_tasks(&sweep), vec![1, 2, 3]);
    }

    #[test]
    fn distillation_students_get_their_own_array_after_the_teachers() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = seqls_run::ExperimentConfig::synth_default();
        config.sweep.alphas = vec![0.0, 0.1];
        config.sweep.beams = vec![1, 4];
        config.distill.kinds = vec!["word".into(), "seq".into()];
        config.distill.temperatures = vec![2.0];
        let sweep = Sweep::create(dir.path(), config).unwrap();
        assert_eq!(unfinished_students(&sweep), vec![0, 1, 2, 3, 4]);
        let scripts =
            write_scripts(&sweep, Path::new("/opt/seqls"), &[0, 1], &[0, 1, 2, 3, 4]).unwrap();
        let text = std::fs::read_to_string(scripts.students.unwrap()).unwrap();
        for needle in [
            "#SBATCH --array=0,1,2,3,4",
            "#SBATCH --requeue",
            "student-%A_%a.out",
            "\"$SEQLS\" distill-data --teacher",
            "--beam 4 --out",
            "students/word-T2-w0.5-a0.1-s1.toml",
            "--skip-finished --threads \"$THREADS\"",
        ] {
            assert!(
                text.contains(needle),
                "students.sbatch lacks {needle:?}:\n{text}"
            );
        }
        // Every teacher finished: only the students are written.
        let only = write_scripts(&sweep, Path::new("/opt/seqls"), &[], &[4]).unwrap();
        assert!(only.students.is_some() && only.tasks.is_empty());
    }
}
