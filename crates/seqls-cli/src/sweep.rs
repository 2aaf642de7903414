//! `seqls sweep` and `seqls report`: train every α, evaluate each at every beam size, and write
//! `report.md`, `report.json`, `table.csv` and `figures/` in the sweep directory (see
//! [`seqls_sweep::report`]).
//!
//! The jobs and how they run are [`seqls_sweep::Sweep`]; this file maps flags onto the config.

use crate::args::ConfigArgs;
use anyhow::bail;
use clap::{Args, ValueEnum};
use seqls_sweep::Sweep;
use seqls_sweep::write_report;
use std::path::PathBuf;

/// Where the jobs of a sweep run.
#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub enum Backend {
    /// One after the other in this process
    Local,
    /// As a Slurm job array (one task per training and its evaluations) and a report job that
    /// depends on it, submitted with sbatch; `[sweep.slurm]` sets the resources
    Slurm,
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Comma-separated α values (default: the config's sweep.alphas)
    #[arg(long, value_delimiter = ',')]
    alphas: Option<Vec<f64>>,
    /// Comma-separated beam sizes (default: the config's sweep.beams)
    #[arg(long, value_delimiter = ',')]
    beams: Option<Vec<usize>>,
    /// The beam size at which the report compares α values (default: the config's
    /// sweep.compare_beam, 4)
    #[arg(long)]
    compare_beam: Option<usize>,
    /// Comma-separated seeds (default: the config's sweep.seeds)
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
    /// Comma-separated splits to evaluate on, e.g. test_2016_flickr,test_2017_flickr (default: the
    /// config's sweep.test_splits)
    #[arg(long, value_delimiter = ',')]
    test_splits: Option<Vec<String>>,
    /// Sweep directory (default: sweeps/<config name>)
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print one `seqls train` / `seqls eval` command per job instead of running them
    #[arg(long)]
    plan: bool,
    /// Where the jobs run
    #[arg(long, value_enum, default_value_t = Backend::Local)]
    backend: Backend,
    /// With --backend slurm: write SWEEP/slurm/array.sbatch and report.sbatch without submitting
    #[arg(long)]
    dry_run: bool,
    /// Print where every job stands (done, running, pending, failed, interrupted, not started), from
    /// the run directories and, for a Slurm sweep, squeue and sacct
    #[arg(long, conflicts_with_all = ["plan", "dry_run"])]
    status: bool,
    /// Epochs per α (overrides train.max_epochs)
    #[arg(long)]
    max_epochs: Option<usize>,
    /// Wall-clock budget of each training job, e.g. 12m (overrides train.max_time)
    #[arg(long)]
    max_time: Option<seqls_run::WallClock>,
    #[command(flatten)]
    device: crate::DeviceArgs,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Sweep directory
    dir: PathBuf,
    #[command(flatten)]
    device: crate::DeviceArgs,
}

pub fn run(args: SweepArgs) -> anyhow::Result<()> {
    let (device, threads) = args.device.resolve()?;
    let mut config = args.config.load()?;
    if let Some(a) = args.alphas {
        config.sweep.alphas = a;
    }
    if let Some(b) = args.beams {
        config.sweep.beams = b;
    }
    if let Some(k) = args.compare_beam {
        config.sweep.compare_beam = k;
    }
    if let Some(s) = args.seeds {
        config.sweep.seeds = s;
    }
    if let Some(t) = args.test_splits {
        config.sweep.test_splits = t;
    }
    if let Some(e) = args.max_epochs {
        config.train.max_epochs = e;
    }
    if let Some(m) = args.max_time {
        config.train.max_time = Some(m);
    }
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("sweeps").join(&config.name));
    if args.status {
        return print_status(&Sweep::open(&out)?);
    }
    if args.dry_run && args.backend != Backend::Slurm {
        bail!("--dry-run writes the Slurm scripts: use it with --backend slurm");
    }
    let sweep = Sweep::create(&out, config)?;
    if args.backend == Backend::Slurm && !args.plan {
        return submit_to_slurm(&sweep, args.dry_run);
    }
    if args.plan {
        for line in sweep.plan() {
            println!("{line}");
        }
        return Ok(());
    }
    sweep.run(&device, threads)?;
    let report = write_report(&out, &device)?;
    println!("{report}");
    println!("wrote {}", out.join("report.md").display());
    Ok(())
}

fn print_status(sweep: &Sweep) -> anyhow::Result<()> {
    let states = seqls_sweep::slurm::status(sweep);
    let mut unfinished = 0;
    println!("task\tα\tseed\tstate");
    for (i, (job, state)) in states.iter().enumerate() {
        println!("{i}\t{}\t{}\t{state}", job.alpha, job.seed);
        unfinished += usize::from(*state != seqls_sweep::driver::State::Done);
    }
    let students = sweep.student_status();
    let mut students_done = 0;
    if !students.is_empty() {
        println!("student\tseed\tstate");
    }
    for (job, state) in &students {
        students_done += usize::from(*state == seqls_sweep::driver::State::Done);
        println!("{}\t{}\t{state}", job.name, job.seed);
    }
    if !students.is_empty() {
        println!("{students_done} of {} students done", students.len());
    }
    println!(
        "{} of {} jobs done{}",
        states.len() - unfinished,
        states.len(),
        if sweep.dir.join("report.md").exists() {
            format!("; report: {}", sweep.dir.join("report.md").display())
        } else {
            String::new()
        }
    );
    Ok(())
}

fn submit_to_slurm(sweep: &Sweep, dry_run: bool) -> anyhow::Result<()> {
    let seqls = match &sweep.config.sweep.slurm.seqls {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let tasks = seqls_sweep::slurm::unfinished_tasks(sweep);
    let student_tasks = seqls_sweep::slurm::unfinished_students(sweep);
    if tasks.is_empty() && student_tasks.is_empty() {
        println!(
            "every job of {} is finished, running or queued; `seqls report {}` writes the report",
            sweep.dir.display(),
            sweep.dir.display()
        );
        return Ok(());
    }
    let scripts = seqls_sweep::slurm::write_scripts(sweep, &seqls, &tasks, &student_tasks)?;
    if dry_run {
        if !tasks.is_empty() {
            println!(
                "wrote {} ({} array tasks)",
                scripts.array.display(),
                tasks.len()
            );
        }
        if let Some(students) = &scripts.students {
            println!(
                "wrote {} ({} distillation students, to run after the array)",
                students.display(),
                student_tasks.len()
            );
        }
        println!(
            "wrote {}\nsubmit with `seqls sweep ... --backend slurm` (without --dry-run), or by hand:\n  a=$(sbatch --parsable {})\n  sbatch --dependency=afterok:$a --kill-on-invalid-dep=yes {}",
            scripts.report.display(),
            scripts.array.display(),
            scripts.report.display()
        );
        return Ok(());
    }
    let s = seqls_sweep::slurm::submit(sweep, &scripts)?;
    if !s.tasks.is_empty() {
        println!(
            "submitted array job {} ({} tasks: {:?})",
            s.array_job,
            s.tasks.len(),
            s.tasks
        );
    }
    if let Some(job) = &s.students_job {
        println!(
            "submitted students' array job {job} ({} students; after the teachers' array)",
            s.student_tasks.len()
        );
    }
    println!(
        "submitted report job {} (after every array succeeds)\nwhere it stands: seqls sweep --out {} --status",
        s.report_job,
        sweep.dir.display()
    );
    Ok(())
}

pub fn run_report(args: ReportArgs) -> anyhow::Result<()> {
    let (device, _) = args.device.resolve()?;
    println!("{}", write_report(&args.dir, &device)?);
    Ok(())
}
