//! Interruptions: two trainings on one run directory, kill -9 at any moment of a training, a closed
//! pipe, a full disk. The first training is never disturbed, a killed one resumes to the same bytes,
//! and nothing is ever half-written.

mod common;

use common::{SEQLS, seqls, seqls_with_input, snapshot, stderr, write};
use std::path::Path;
use std::process::{Command, Stdio};

const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tiny-sweep.toml");

#[test]
fn a_second_training_on_a_run_directory_fails_at_once_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let args = [
        "train",
        "--config",
        TINY,
        "--run-dir",
        run_dir.to_str().unwrap(),
        "--max-epochs",
        "1000",
        "--threads",
        "1",
        "--quiet",
    ];
    let mut first = Command::new(SEQLS)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first holds the lock (its holder record is written once it does).
    let lock = run_dir.join(".lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&lock).is_ok_and(|t| t.contains(&first.id().to_string())) {
        assert!(
            std::time::Instant::now() < deadline,
            "the first training never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for extra in [
        &[][..],
        &["--resume-or-start"][..],
        &["--alpha", "0.2", "--resume-or-start"][..],
    ] {
        let mut second_args = args.to_vec();
        second_args.extend_from_slice(extra);
        let started = std::time::Instant::now();
        let second = seqls(&second_args);
        let err = stderr(&second);
        assert_eq!(second.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("in use by process {}", first.id()))
                || err.contains("already holds a checkpoint"),
            "{err}"
        );
        assert!(
            started.elapsed().as_secs() < 30,
            "the second training waited"
        );
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // The kernel released the lock with the killed process: the run resumes.
    let out = seqls(&[
        "train",
        "--config",
        TINY,
        "--run-dir",
        run_dir.to_str().unwrap(),
        "--max-epochs",
        "1",
        "--threads",
        "1",
        "--quiet",
        "--resume-or-start",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn killed_at_any_moment_a_training_resumes_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    let text = std::fs::read_to_string(TINY).unwrap();
    std::fs::write(
        &config,
        text.replace("max_epochs = 2", "max_epochs = 40").replace(
            "valid_bleu = true",
            "valid_bleu = false\ncheckpoint_every = 3\nmax_steps = 150",
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let train = |run_dir: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--config",
            config,
            "--run-dir",
            run_dir.to_str().unwrap(),
            "--threads",
            "1",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let whole = dir.path().join("whole");
    let out = seqls(
        &train(&whole, &[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let killed = dir.path().join("killed");
    // Kill at increasing delays: before the first checkpoint, during writes, between them.
    for (round, delay_ms) in [150u64, 400, 700, 1000, 1500].into_iter().enumerate() {
        let args = train(&killed, &["--resume-or-start"]);
        let mut child = Command::new(SEQLS)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if status.success() {
            break; // it finished before the kill
        }
        // Whatever moment it died at, the checkpoint on disk is whole (or absent).
        let checkpoint = killed.join("checkpoint.bin");
        if checkpoint.exists() {
            seqls_run::checkpoint::load(&checkpoint)
                .unwrap_or_else(|e| panic!("round {round}: damaged checkpoint: {e}"));
        }
    }
    let out = seqls(
        &train(&killed, &["--resume-or-start"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for f in [
        "checkpoint.bin",
        "model-best.bpk",
        "config.toml",
        "tokenizer.json",
    ] {
        assert!(
            std::fs::read(whole.join(f)).unwrap() == std::fs::read(killed.join(f)).unwrap(),
            "{f} differs from the uninterrupted run"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(&killed)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn a_closed_pipe_ends_seqls_quietly() {
    // `seqls … | head -1`: the reader goes away after the first line.
    let dir = tempfile::tempdir().unwrap();
    let refs = write(
        dir.path(),
        "r.txt",
        "a cat sits\n".repeat(20_000).as_bytes(),
    );
    let mut child = Command::new(SEQLS)
        .args(["corpus", "stats", "--src", &refs, "--tgt", &refs, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // closed before seqls writes
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(out.status.code(), Some(101), "{err}");
}

#[test]
fn on_a_full_disk_no_temporary_is_left_and_the_last_checkpoint_still_loads() {
    // A 600 KiB tmpfs: room for one run directory of the tiny model, not for a second checkpoint.
    let mnt = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=600k", "tmpfs"])
        .arg(mnt.path())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "skipped: cannot mount a small tmpfs here (needs root); the ENOSPC path is also unit-tested in seqls-data"
        );
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(mnt.path());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    let text = std::fs::read_to_string(TINY).unwrap();
    let with_steps = |n: usize| {
        text.replace("max_epochs = 2", "max_epochs = 40").replace(
            "valid_bleu = true",
            &format!("valid_bleu = false\nmax_steps = {n}"),
        )
    };
    let run_dir = mnt.path().join("run");
    let train = |steps: usize, extra: &[&str]| {
        std::fs::write(&config, with_steps(steps)).unwrap();
        let mut args = vec![
            "train",
            "--config",
            config.to_str().unwrap(),
            "--run-dir",
            run_dir.to_str().unwrap(),
            "--threads",
            "1",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        seqls(&args)
    };
    assert!(train(30, &[]).status.success());
    let before = std::fs::read(run_dir.join("checkpoint.bin")).unwrap();
    // Fill the disk, leaving less than a checkpoint's worth.
    let free = 150 * 1024;
    let used: u64 = snapshot(mnt.path())
        .iter()
        .map(|(_, b)| b.len() as u64)
        .sum();
    let filler = (600 * 1024u64).saturating_sub(used + free);
    std::fs::write(mnt.path().join("filler"), vec![0u8; filler as usize]).unwrap();
    let out = train(60, &["--resume"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let temporaries: Vec<_> = snapshot(mnt.path())
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(
        temporaries.is_empty(),
        "left behind: {:?}",
        temporaries.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    assert!(std::fs::read(run_dir.join("checkpoint.bin")).unwrap() == before);
    seqls_run::checkpoint::load(&run_dir.join("checkpoint.bin")).unwrap();
    let decoded = seqls_with_input(
        &["decode", "--model", run_dir.to_str().unwrap()],
        b"ein Hund\n",
    );
    assert!(decoded.status.success(), "{}", stderr(&decoded));
    // With room again, the run resumes from that checkpoint and finishes.
    std::fs::remove_file(mnt.path().join("filler")).unwrap();
    assert!(train(60, &["--resume"]).status.success());
}
