//! Faults in the input: malformed input to every command, damaged or foreign model files. Every
//! refusal must exit with code 2, say what is wrong in one line that names the file (and line) where
//! there is one, never panic, and create or change no output.

mod common;

use common::{seqls, seqls_with_input, snapshot, stderr, write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tiny-sweep.toml");

/// A tiny trained run directory shared by the tests (trained once, read only afterwards).
fn trained_run() -> &'static Path {
    static RUN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let out = seqls(&[
            "train",
            "--config",
            TINY,
            "--run-dir",
            run.to_str().unwrap(),
            "--max-steps",
            "3",
            "--threads",
            "1",
            "--quiet",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        (dir, run)
    })
    .1
}

/// One refused input.
struct Case<'a> {
    args: Vec<String>,
    stdin: Option<&'a [u8]>,
    /// Every one of these must appear in the error output.
    says: &'a [&'a str],
}

fn case<'a>(args: &[&str], says: &'a [&'a str]) -> Case<'a> {
    Case {
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: None,
        says,
    }
}

/// Runs every case in `cases` with `watched` (a directory) snapshotted around it: each must exit 2,
/// say what it should, not panic, and leave `watched` exactly as it was.
fn check_refusals(cases: Vec<Case>, watched: &Path) -> usize {
    let mut failures = vec![];
    for c in &cases {
        let before = snapshot(watched);
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let out = match c.stdin {
            Some(input) => seqls_with_input(&args, input),
            None => seqls(&args),
        };
        let err = stderr(&out);
        let mut why = vec![];
        if out.status.code() != Some(2) {
            why.push(format!("exit code {:?}", out.status.code()));
        }
        if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
            why.push("panicked".into());
        }
        for needle in c.says {
            if !err.contains(needle) {
                why.push(format!("does not say {needle:?}"));
            }
        }
        if snapshot(watched) != before {
            why.push("changed files".into());
        }
        if !why.is_empty() {
            failures.push(format!(
                "seqls {}: {}\n    {err}",
                args.join(" "),
                why.join(", ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    cases.len()
}

#[test]
fn malformed_input_to_every_command_is_refused_cleanly() {
    let model = trained_run().to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = |name: &str| d.join(name).to_str().unwrap().to_string();
    let refs = write(d, "ref.txt", b"a cat sits\na dog runs\n");
    let hyp3 = write(d, "hyp3.txt", b"a cat\na dog\nmore\n");
    let hyp = write(d, "hyp.txt", b"a cat\na dog\n");
    let bad_utf8 = write(d, "bad.txt", b"fine\n\xff\xfe\n");
    let tsv = write(d, "p.tsv", b"a\tb\nno tab here\n");
    let src3 = write(d, "s3.txt", b"x\ny\nz\n");
    let unknown_key = write(d, "unknown.toml", b"[train]\nalpah = 0.1\n");
    let bad_range = write(d, "range.toml", b"[train]\nalpha = 2.0\n");
    let bad_toml = write(d, "syntax.toml", b"[train\nalpha = 0.1\n");
    let missing_data = write(
        d,
        "files.toml",
        b"[data]\ncorpus = \"files\"\ntrain = [\"nowhere/train.de\", \"nowhere/train.en\"]\nval = [\"nowhere/val.de\", \"nowhere/val.en\"]\n",
    );
    let a_file = write(d, "plain-file", b"x");
    let tokens = write(d, "tokens.txt", b"\xe2\x96\x81notatoken\n\xe2\x96\x81no\n");
    let (run_new, sweep_out) = (p("never-created"), p("never-swept"));
    // An output path that is a directory: the write fails and leaves no temporary file.
    let outdir = p("outdir");
    std::fs::create_dir_all(&outdir).unwrap();

    let cases = vec![
        // bleu
        case(
            &["bleu", &p("missing.txt"), "-i", &hyp],
            &["missing.txt", "No such file"],
        ),
        case(&["bleu", &refs, "-i", &hyp3], &["hyp3.txt", "3", "2"]),
        case(&["bleu", &bad_utf8, "-i", &hyp], &["bad.txt:2", "UTF-8"]),
        case(&["bleu", &refs, "-i", &hyp, "--tokenize", "zh"], &["zh"]),
        case(
            &[
                "bleu",
                &refs,
                "-i",
                &hyp,
                "--paired-bs",
                "--paired-bs-n",
                "0",
            ],
            &["--paired-bs-n"],
        ),
        case(
            &["bleu", &refs, "-i", &hyp, "--paired-bs"],
            &["two hypothesis files"],
        ),
        case(
            &["bleu", &refs, "-i", &hyp, "--smooth-method", "bogus"],
            &["bogus"],
        ),
        case(&["bleu", &refs, "-i", &hyp, "--format", "xml"], &["xml"]),
        // corpus
        case(
            &["corpus", "stats", "--src", &src3, "--tgt", &hyp],
            &["s3.txt has 3 lines", "hyp.txt has 2 lines"],
        ),
        case(&["corpus", "stats", "--tsv", &tsv], &["p.tsv:2", "tab"]),
        case(
            &["corpus", "stats", "--src", &p("nope.de"), "--tgt", &hyp],
            &["nope.de"],
        ),
        case(&["corpus", "stats", "--corpus", "nonesuch"], &["nonesuch"]),
        case(
            &["corpus", "synth", "--pairs", "0", "--out", &p("synth-out")],
            &["--pairs"],
        ),
        case(
            &["corpus", "synth", "--pairs", "10", "--out", &a_file],
            &["plain-file", "not a directory"],
        ),
        case(
            &["corpus", "fetch", "wmt14", "--out", &p("fetched")],
            &["wmt14"],
        ),
        // train: every refusal before the run directory exists
        case(
            &[
                "train",
                "--config",
                TINY,
                "--alpha",
                "1.5",
                "--run-dir",
                &run_new,
            ],
            &["train.alpha", "1.5"],
        ),
        case(
            &[
                "train",
                "--config",
                TINY,
                "--alpha",
                "NaN",
                "--run-dir",
                &run_new,
            ],
            &["train.alpha"],
        ),
        case(
            &["train", "--config", &p("none.toml"), "--run-dir", &run_new],
            &["none.toml"],
        ),
        case(
            &["train", "--config", &unknown_key, "--run-dir", &run_new],
            &["unknown.toml", "alpah"],
        ),
        case(
            &["train", "--config", &bad_range, "--run-dir", &run_new],
            &["range.toml", "train.alpha"],
        ),
        case(
            &["train", "--config", &bad_toml, "--run-dir", &run_new],
            &["syntax.toml"],
        ),
        case(
            &["train", "--config", &missing_data, "--run-dir", &run_new],
            &["nowhere/train.de"],
        ),
        case(
            &["train", "--config", TINY, "--run-dir", &a_file],
            &["plain-file", "not a run directory"],
        ),
        case(
            &["train", "--config", TINY, "--run-dir", &run_new, "--resume"],
            &["no checkpoint"],
        ),
        case(
            &[
                "train",
                "--config",
                TINY,
                "--run-dir",
                &run_new,
                "--threads",
                "0",
            ],
            &["--threads"],
        ),
        case(
            &[
                "train",
                "--config",
                TINY,
                "--run-dir",
                &run_new,
                "--ls-variant",
                "bogus",
            ],
            &["bogus"],
        ),
        case(
            &[
                "train",
                "--config",
                TINY,
                "--run-dir",
                &run_new,
                "--device",
                "tpu",
            ],
            &["tpu"],
        ),
        case(
            &[
                "train",
                "--config",
                TINY,
                "--run-dir",
                &run_new,
                "--shards",
                "0",
            ],
            &["train.shards"],
        ),
        case(
            &["train", "--config", TINY, "--run-dir", &model],
            &["already holds a checkpoint", "--resume"],
        ),
        case(
            &[
                "train",
                "--config",
                TINY,
                "--run-dir",
                &model,
                "--resume",
                "--seed",
                "9",
            ],
            &["train.seed: 1 → 9", "would change its results"],
        ),
        // decode and score
        case(
            &["decode", "--model", &p("no-run")],
            &["no-run", "no such run directory"],
        ),
        case(
            &["decode", "--model", &model, "--max-len-a", "inf"],
            &["max-len-a"],
        ),
        case(
            &[
                "decode",
                "--model",
                &model,
                "--max-len-b",
                "18446744073709551615",
            ],
            &["max-len-b", "limit"],
        ),
        case(
            &["decode", "--model", &model, "--min-len", "1000000"],
            &["min-len", "limit"],
        ),
        case(&["decode", "--model", &model, "--beam", "0"], &["beam"]),
        case(
            &["decode", "--model", &model, "--beam", "2", "--nbest", "5"],
            &["nbest"],
        ),
        case(
            &["decode", "--model", &model, "--temperature", "0"],
            &["temperature"],
        ),
        case(
            &["decode", "--model", &model, "--temperature", "NaN"],
            &["temperature"],
        ),
        case(
            &["decode", "--model", &model, "--batch-size", "0"],
            &["--batch-size"],
        ),
        case(
            &["decode", "--model", &model, "--input", &p("no-input.txt")],
            &["no-input.txt"],
        ),
        case(&["decode", "--model", &model, "--format", "xml"], &["xml"]),
        case(
            &[
                "decode", "--model", &model, "--input", &hyp, "--output", &outdir,
            ],
            &["outdir"],
        ),
        case(
            &["score", "--model", &model, "--src", &src3, "--hyp", &hyp],
            &["s3.txt has 3 lines"],
        ),
        case(
            &[
                "score",
                "--model",
                &model,
                "--src",
                &hyp,
                "--hyp",
                &tokens,
                "--hyp-tokens",
            ],
            &["tokens.txt:1", "not a token"],
        ),
        // eval, sweep, report, bench
        case(&["eval", "--model", &model, "--bins", "0"], &["--bins"]),
        case(
            &["eval", "--model", &model, "--split", "dev2012"],
            &["dev2012"],
        ),
        case(&["eval", "--model", &p("no-run")], &["no-run"]),
        case(
            &[
                "sweep", "--config", TINY, "--alphas", "0,1.5", "--out", &sweep_out,
            ],
            &["α = 1.5", "train.alpha"],
        ),
        case(
            &[
                "sweep", "--config", TINY, "--beams", "1,0", "--out", &sweep_out,
            ],
            &["beam 0"],
        ),
        case(
            &[
                "sweep", "--config", TINY, "--beams", "1,2", "--out", &sweep_out,
            ],
            &["compare_beam = 4", "[1, 2]", "--compare-beam"],
        ),
        case(
            &[
                "sweep",
                "--config",
                TINY,
                "--test-splits",
                "test,test_2017_flickr",
                "--out",
                &sweep_out,
            ],
            &["test_2017_flickr", "corpus synth has train, val and test"],
        ),
        case(
            &["eval", "--model", &model, "--split", "test_2017_flickr"],
            &["unknown split \"test_2017_flickr\"", "train, val and test"],
        ),
        case(&["report", &p("empty-report")], &["empty-report"]),
        case(
            &["sweep", "--out", &sweep_out, "--status"],
            &["never-swept", "no sweep here", "--plan"],
        ),
        case(&["bench", "train", "--shape", "XXL"], &["XXL"]),
    ];
    let mut stdin_case = case(&["decode", "--model", &model], &["<stdin>:2", "UTF-8"]);
    stdin_case.stdin = Some(b"ein Hund\nein \xff Hund\n");
    let mut cases = cases;
    cases.push(stdin_case);
    let checked = check_refusals(cases, d);
    assert!(checked >= 40, "{checked} cases");
    for never in [run_new, sweep_out] {
        assert!(!Path::new(&never).exists(), "{never} was created");
    }
    // The shared run was not touched by the refused trainings either.
    assert!(trained_run().join("checkpoint.bin").exists());
}

#[test]
fn damaged_or_foreign_model_files_are_named_with_their_cause() {
    let dir = tempfile::tempdir().unwrap();
    let copy = |name: &str| {
        let to = dir.path().join(name);
        std::fs::create_dir_all(&to).unwrap();
        for f in [
            "config.toml",
            "tokenizer.json",
            "model-best.bpk",
            "checkpoint.bin",
        ] {
            std::fs::copy(trained_run().join(f), to.join(f)).unwrap();
        }
        to
    };
    let truncated = copy("truncated");
    let bytes = std::fs::read(truncated.join("model-best.bpk")).unwrap();
    std::fs::write(truncated.join("model-best.bpk"), &bytes[..bytes.len() / 3]).unwrap();
    let empty = copy("empty");
    std::fs::write(empty.join("model-best.bpk"), b"").unwrap();
    let bad_checkpoint = copy("bad-checkpoint");
    std::fs::remove_file(bad_checkpoint.join("model-best.bpk")).unwrap();
    std::fs::write(bad_checkpoint.join("checkpoint.bin"), b"SEQLSCK1\x10").unwrap();
    // Another tokenizer (another vocabulary size) next to the weights.
    let foreign = copy("foreign-tokenizer");
    let mut config = std::fs::read_to_string(foreign.join("config.toml")).unwrap();
    let tok_dir = dir.path().join("tok");
    config = config.replace("vocab_size = 600", "vocab_size = 300");
    std::fs::create_dir_all(&tok_dir).unwrap();
    std::fs::write(tok_dir.join("c.toml"), &config).unwrap();
    let out = seqls(&[
        "train",
        "--config",
        tok_dir.join("c.toml").to_str().unwrap(),
        "--run-dir",
        tok_dir.join("run").to_str().unwrap(),
        "--max-steps",
        "1",
        "--threads",
        "1",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::copy(
        tok_dir.join("run/tokenizer.json"),
        foreign.join("tokenizer.json"),
    )
    .unwrap();
    let changed_shape = copy("changed-shape");
    let config = std::fs::read_to_string(changed_shape.join("config.toml")).unwrap();
    std::fs::write(
        changed_shape.join("config.toml"),
        config.replace("d_ff = 32", "d_ff = 48"),
    )
    .unwrap();

    let s = |p: &Path| p.to_str().unwrap().to_string();
    let cases = vec![
        case(
            &["decode", "--model", &s(&truncated)],
            &["truncated/model-best.bpk", "corrupt"],
        ),
        case(
            &["decode", "--model", &s(&empty)],
            &["empty/model-best.bpk", "empty"],
        ),
        case(
            &["decode", "--model", &s(&bad_checkpoint)],
            &["bad-checkpoint/checkpoint.bin", "truncated"],
        ),
        case(
            &["decode", "--model", &s(&foreign)],
            &["foreign-tokenizer/model-best.bpk", "tokenizer"],
        ),
        case(
            &["decode", "--model", &s(&changed_shape)],
            &["changed-shape/model-best.bpk", "model shape"],
        ),
    ];
    for c in &cases {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let out = seqls_with_input(
            &args,
            b"ein Hund
",
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        for needle in c.says {
            assert!(
                err.contains(needle),
                "{args:?} does not say {needle:?}: {err}"
            );
        }
    }
}
