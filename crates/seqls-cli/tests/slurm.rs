//! `seqls sweep --backend slurm` on a real single-node Slurm cluster started by
//! `.ci/slurm-localhost.sh`: the generated script passes `sbatch --test-only`, one array task is
//! requeued in the middle of its training and resumes from its checkpoint, and the result equals a
//! local sweep of the same config (weights, hypotheses and report table, byte for byte).
//!
//! Skips with a notice when Slurm (slurmctld, slurmd, sbatch, munge) is not installed or the test does
//! not run as root (slurmd needs it); under `SEQLS_REQUIRE_SLURM=1` (set by `.ci/run`) that fails
//! instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slurm-sweep.toml");

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A running single-node cluster; stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Option<Cluster> {
        let installed = ["slurmctld", "slurmd", "sbatch", "munged"].iter().all(|p| {
            Command::new("sh")
                .args(["-c", &format!("command -v {p} || test -x /usr/sbin/{p}")])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if !installed || !root {
            let why = if installed {
                "not running as root"
            } else {
                "Slurm is not installed"
            };
            if std::env::var("SEQLS_REQUIRE_SLURM").as_deref() == Ok("1") {
                panic!("SEQLS_REQUIRE_SLURM=1 but {why}");
            }
            eprintln!(
                "notice: {why}; skipping the Slurm sweep test (apt-get install slurmd slurmctld slurm-client munge)"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(workspace_root().join(".ci/slurm-localhost.sh"))
            .arg("start")
            .arg(dir.path())
            .env("PATH", path_with_sbin())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "starting Slurm failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Cluster { dir })
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    /// Runs a command against this cluster.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .env("SLURM_CONF", self.conf())
            .env("PATH", path_with_sbin())
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"))
    }

    fn seqls(&self, args: &[&str]) -> Output {
        self.run(env!("CARGO_BIN_EXE_seqls"), args)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(workspace_root().join(".ci/slurm-localhost.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

fn path_with_sbin() -> String {
    format!(
        "{}:/usr/sbin:/sbin",
        std::env::var("PATH").unwrap_or_default()
    )
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `table.csv` without its wall-clock column.
fn table_without_time(dir: &Path) -> String {
    let csv = std::fs::read_to_string(dir.join("table.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let drop = header.iter().position(|h| *h == "train_s").unwrap();
    std::iter::once(header)
        .chain(lines.map(|l| l.split(',').collect()))
        .map(|fields: Vec<&str>| {
            fields
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != drop)
                .map(|(_, f)| *f)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn slurm_sweep_survives_a_requeue_and_equals_the_local_sweep() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let sweep = work.path().join("slurm-sweep");
    let sweep_arg = sweep.to_str().unwrap();

    // --dry-run writes a script that sbatch accepts, and submits nothing.
    let out = cluster.seqls(&[
        "sweep",
        "--config",
        CONFIG,
        "--out",
        sweep_arg,
        "--backend",
        "slurm",
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let script = sweep.join("slurm/array.sbatch");
    let body = std::fs::read_to_string(&script).unwrap();
    for needle in [
        "#SBATCH --array=0,1",
        "#SBATCH --requeue",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --mem=500M",
        "#SBATCH --nice=0",
        "--resume-or-start",
        "--skip-finished",
    ] {
        assert!(
            body.contains(needle),
            "array.sbatch lacks {needle:?}:\n{body}"
        );
    }
    let test_only = cluster.run("sbatch", &["--test-only", script.to_str().unwrap()]);
    assert!(test_only.status.success(), "{}", text(&test_only));
    assert!(!sweep.join("slurm/submitted.json").exists());

    // Submit; requeue task 1 while it trains.
    let out = cluster.seqls(&[
        "sweep",
        "--config",
        CONFIG,
        "--out",
        sweep_arg,
        "--backend",
        "slurm",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let submitted: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sweep.join("slurm/submitted.json")).unwrap())
            .unwrap();
    let array_job = submitted[0]["array_job"].as_str().unwrap().to_string();
    let task = format!("{array_job}_1");
    let run1 = sweep.join("a0.1-s1");
    wait_for("task 1 to checkpoint", Duration::from_secs(180), || {
        run1.join("checkpoint.bin").exists()
    });
    assert!(
        !run1.join("metrics.json").exists(),
        "task 1 finished before it could be requeued: lengthen the training of {CONFIG}"
    );
    let status = cluster.seqls(&["sweep", "--out", sweep_arg, "--status"]);
    assert!(
        text(&status).contains(&format!("running (Slurm job {task})")),
        "{}",
        text(&status)
    );
    let requeue = cluster.run("scontrol", &["requeue", &task]);
    assert!(requeue.status.success(), "{}", text(&requeue));
    // Slurm holds a requeued job back (BeginTime) for two minutes; once it is pending again, let it
    // start at once.
    wait_for(
        "the requeued task to be pending",
        Duration::from_secs(60),
        || {
            let q = cluster.run("squeue", &["-h", "-j", &task, "-o", "%T %r"]);
            String::from_utf8_lossy(&q.stdout).contains("PENDING")
        },
    );
    let release = cluster.run(
        "scontrol",
        &["update", &format!("jobid={task}"), "StartTime=now"],
    );
    assert!(release.status.success(), "{}", text(&release));

    wait_for("the report", Duration::from_secs(600), || {
        sweep.join("report.md").exists()
    });
    let status = text(&cluster.seqls(&["sweep", "--out", sweep_arg, "--status"]));
    assert!(status.contains("2 of 2 jobs done"), "{status}");

    // The requeued task ran twice and its second run resumed from the checkpoint.
    let log =
        std::fs::read_to_string(sweep.join(format!("slurm/logs/seqls-slurm-test-{task}.out")))
            .unwrap();
    assert_eq!(log.matches("task 1 (restart").count(), 2, "{log}");
    assert!(log.contains("(restart 1)"), "{log}");
    assert!(log.contains("resuming at update"), "{log}");

    // The same sweep run locally gives the same weights, hypotheses and table.
    let local = work.path().join("local-sweep");
    let out = cluster.seqls(&[
        "sweep",
        "--config",
        CONFIG,
        "--out",
        local.to_str().unwrap(),
        "--threads",
        "1",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    for run in ["a0-s1", "a0.1-s1"] {
        for file in [
            "checkpoint.bin",
            "model-best.bpk",
            "eval-test-beam1.hyp.txt",
            "eval-test-beam2.hyp.txt",
        ] {
            let a = std::fs::read(sweep.join(run).join(file)).unwrap();
            let b = std::fs::read(local.join(run).join(file)).unwrap();
            assert!(
                a == b,
                "{run}/{file} differs between the Slurm and the local sweep"
            );
        }
    }
    assert_eq!(table_without_time(&sweep), table_without_time(&local));
}
