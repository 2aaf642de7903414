//! `seqls export --format ctranslate2` on a small trained model (`small-synth.toml`: one that ends its
//! translations, unlike the tiny one, whose outputs run to the length limit, where the engines differ
//! by construction — seqls then allows only `</s>`, CTranslate2 stops without it): CTranslate2 (float32, beam 4, the
//! same length penalty and limits, `bench/ct2_translate.py`) gives the same translations as
//! `seqls decode` for the test sentences, and scores them as `seqls score` does (sentence
//! log-probabilities within 1e-3 nats); at CTranslate2's own stopping (patience 1) it gives
//! `seqls decode --early-stop`'s translations; an existing output directory is refused; `seqls bench
//! decode --model` times both engines on it.
//!
//! Needs a Python with ctranslate2, tokenizers, safetensors and numpy: `SEQLS_PYTHON` (default
//! `python3`). Without one the test is skipped with a notice, unless `SEQLS_REQUIRE_CT2=1` (CI
//! installs them in a venv outside the checkout).

mod common;

use common::{assert_mostly_identical, ok, seqls, trained};
use std::process::{Command, Stdio};

const BENCH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench");

fn python() -> Option<String> {
    let python = std::env::var("SEQLS_PYTHON").unwrap_or_else(|_| "python3".into());
    let has = Command::new(&python)
        .args(["-c", "import ctranslate2, tokenizers, safetensors, numpy"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    match (
        has,
        std::env::var("SEQLS_REQUIRE_CT2").as_deref() == Ok("1"),
    ) {
        (true, _) => Some(python),
        (false, true) => panic!(
            "SEQLS_REQUIRE_CT2=1 but {python} lacks ctranslate2, tokenizers, safetensors or numpy"
        ),
        (false, false) => {
            eprintln!(
                "skipped: {python} lacks ctranslate2, tokenizers, safetensors or numpy (set SEQLS_PYTHON)"
            );
            None
        }
    }
}

/// `bench/ct2_translate.py MODEL ARGS < input`, its stdout.
fn ct2(python: &str, model: &str, args: &[&str], input: &str) -> String {
    let out = Command::new(python)
        .arg(format!("{BENCH}/ct2_translate.py"))
        .arg(model)
        .args(args)
        .stdin(std::fs::File::open(input).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn ctranslate2_translates_and_scores_as_seqls() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (run, src) = trained(dir.path(), "small-synth.toml");
    let model = dir.path().join("ct2").to_str().unwrap().to_owned();
    let export = [
        "export",
        &run,
        "--format",
        "ctranslate2",
        "--out",
        &model,
        "--python",
        &python,
    ];
    ok(seqls(&export));
    for file in [
        "model.bin",
        "config.json",
        "shared_vocabulary.json",
        "tokenizer.json",
    ] {
        assert!(
            std::path::Path::new(&model).join(file).exists(),
            "{file} missing"
        );
    }
    let again = seqls(&export);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists: remove it or pass another --out")
    );

    let ours = ok(seqls(&[
        "decode", "--model", &run, "--input", &src, "--beam", "4",
    ]));
    let theirs = ct2(&python, &model, &["--beam", "4"], &src);
    assert_mostly_identical(&ours, &theirs, 95, "beam 4, seqls against CTranslate2");

    // CTranslate2's own stopping (patience 1) is seqls's --early-stop: the search the bench times.
    let early = ok(seqls(&[
        "decode",
        "--model",
        &run,
        "--input",
        &src,
        "--beam",
        "8",
        "--early-stop",
    ]));
    let theirs = ct2(&python, &model, &["--beam", "8", "--patience", "1"], &src);
    assert_mostly_identical(
        &early,
        &theirs,
        95,
        "beam 8, early stop, seqls against CTranslate2",
    );

    // The real-model benchmark times both engines on the same search, and seqls's default apart.
    let bench = ok(seqls(&[
        "bench", "decode", "--model", &run, "--input", &src, "--beams", "1,8", "--rounds", "1",
        "--runs", "1", "--python", &python,
    ]));
    for beam in [1, 8] {
        let summary = bench
            .lines()
            .find(|l| l.contains(&format!("beam {beam} ")) && l.contains("median of 1 rounds"))
            .unwrap_or_else(|| panic!("no beam {beam} summary in:\n{bench}"));
        assert!(
            summary.contains("CTranslate2 fp32") && summary.contains("CTranslate2 int8"),
            "{summary}"
        );
        // Timed apart beyond beam 1 only: at beam 1 both rules are the same search.
        assert_eq!(
            bench
                .lines()
                .any(|l| l.contains(&format!("beam {beam} "))
                    && l.contains("the exact stopping rule")),
            beam > 1,
            "the exact-rule line for beam {beam} in:\n{bench}"
        );
    }

    // Both engines score seqls's translations.
    let hyp = dir.path().join("hyp.txt");
    std::fs::write(&hyp, &ours).unwrap();
    let hyp = hyp.to_str().unwrap();
    let theirs = ct2(&python, &model, &["--score-targets", hyp], &src);
    let ours = ok(seqls(&[
        "score", "--model", &run, "--src", &src, "--hyp", hyp,
    ]));
    for (line, (a, b)) in ours.lines().zip(theirs.lines()).enumerate() {
        let (a, b): (Vec<&str>, Vec<&str>) = (a.split('\t').collect(), b.split('\t').collect());
        assert_eq!(a[1], b[1], "line {line}: token counts differ");
        let (a, b): (f64, f64) = (a[0].parse().unwrap(), b[0].parse().unwrap());
        assert!(
            (a - b).abs() <= 1e-3,
            "line {line}: seqls {a} vs CTranslate2 {b}"
        );
    }
}
