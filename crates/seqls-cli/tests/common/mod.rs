//! What the CLI tests that train the tiny synthetic model share.
#![allow(dead_code)] // each test binary uses its part

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The binary under test.
pub const SEQLS: &str = env!("CARGO_BIN_EXE_seqls");

/// Runs `seqls` with `args` (standard input closed); its output and exit status.
pub fn seqls(args: &[&str]) -> Output {
    Command::new(SEQLS).args(args).output().expect("run seqls")
}

/// Runs `seqls` with `args` and `input` as its standard input.
pub fn seqls_with_input(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(SEQLS)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start seqls");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = stdin.write_all(input);
    }
    child.wait_with_output().expect("run seqls")
}

pub fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// Trains `tests/<config>` (a synthetic corpus) into `dir/run` and writes its first 40 test sources.
pub fn trained(dir: &Path, config: &str) -> (String, String) {
    let run = dir.join("run");
    let config = format!("{}/tests/{config}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&config).unwrap();
    let pairs = text
        .lines()
        .find_map(|l| l.strip_prefix("synth_pairs = "))
        .expect("the config sets data.synth_pairs");
    let corpus = dir.join("corpus");
    ok(seqls(&[
        "corpus",
        "synth",
        "--pairs",
        pairs,
        "--seed",
        "1",
        "--out",
        corpus.to_str().unwrap(),
    ]));
    ok(seqls(&[
        "train",
        "--config",
        &config,
        "--alpha",
        "0.1",
        "--run-dir",
        run.to_str().unwrap(),
        "--threads",
        "1",
    ]));
    let test = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_str().unwrap().ends_with("test.src"))
        .expect("the synthetic corpus has test.src");
    let lines: Vec<String> = std::fs::read_to_string(test)
        .unwrap()
        .lines()
        .take(40)
        .map(String::from)
        .collect();
    let src = dir.join("src.txt");
    std::fs::write(&src, lines.join("\n") + "\n").unwrap();
    (
        run.to_str().unwrap().to_string(),
        src.to_str().unwrap().to_string(),
    )
}

/// Asserts that `a` and `b` have as many lines and that at least `percent`% of them are
/// identical; prints the count with `what`.
pub fn assert_mostly_identical(a: &str, b: &str, percent: usize, what: &str) {
    let (a, b): (Vec<_>, Vec<_>) = (a.lines().collect(), b.lines().collect());
    assert_eq!(a.len(), b.len(), "{what}: line counts differ");
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    eprintln!("{what}: {same} of {} lines identical", a.len());
    assert!(
        same * 100 >= a.len() * percent,
        "{what}: only {same} of {} identical",
        a.len()
    );
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes `bytes` to `dir/name`; its path.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

/// Every file under `dir` with its contents (recursively; the lock file's holder record excluded).
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(snapshot(&path));
        } else if path.file_name().is_some_and(|n| n != ".lock") {
            out.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
        }
    }
    out.sort();
    out
}

/// Runs `seqls sweep --config <config> --out <out> --threads 1`.
pub fn sweep(config: &str, out: &str) -> Output {
    seqls(&["sweep", "--config", config, "--out", out, "--threads", "1"])
}
