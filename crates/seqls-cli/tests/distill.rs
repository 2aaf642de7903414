//! Distillation: `seqls distill-data` (sequence level) and the `[distill]` study of `seqls sweep`.

mod common;

use common::{seqls, stderr, sweep};

/// Sequence-level distillation data: a tiny teacher translates its training sources; an interrupted
/// run continues to the same files; a finished one is reused; another search is refused; a student
/// trains on the translations through `data.train`.
#[test]
fn distill_data_is_resumable_and_trains_a_student() {
    let dir = tempfile::tempdir().unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tiny-sweep.toml");
    let teacher = dir.path().join("teacher");
    let out = seqls(&[
        "train",
        "--config",
        config,
        "--run-dir",
        teacher.to_str().unwrap(),
        "--max-epochs",
        "1",
        "--quiet",
        "--threads",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let data = dir.path().join("kd");
    let distill = |beam: &str| {
        seqls(&[
            "distill-data",
            "--teacher",
            teacher.to_str().unwrap(),
            "--out",
            data.to_str().unwrap(),
            "--beam",
            beam,
            "--quiet",
            "--threads",
            "1",
        ])
    };
    let out = distill("2");
    assert!(out.status.success(), "{}", stderr(&out));
    let src = std::fs::read_to_string(data.join("train.src")).unwrap();
    let tgt = std::fs::read_to_string(data.join("train.tgt")).unwrap();
    assert_eq!(src.lines().count(), 300);
    assert_eq!(tgt.lines().count(), 300);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("distill.json")).unwrap()).unwrap();
    assert_eq!(record["finished"], true);
    assert_eq!(record["search"]["beam_size"], 2);
    // Interrupted after 120 translations (and a torn line): the rerun continues to the same files.
    let mut partial: String = tgt.lines().take(120).map(|l| format!("{l}\n")).collect();
    partial.push_str("a torn li");
    std::fs::write(data.join("train.tgt.partial"), partial).unwrap();
    std::fs::remove_file(data.join("train.tgt")).unwrap();
    let mut unfinished = record.clone();
    unfinished["finished"] = serde_json::json!(false);
    std::fs::write(data.join("distill.json"), unfinished.to_string()).unwrap();
    let out = distill("2");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(data.join("train.tgt")).unwrap(),
        tgt
    );
    assert!(!data.join("train.tgt.partial").exists());
    // Another search on the same directory is refused.
    let out = distill("3");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("another teacher or search"),
        "{}",
        stderr(&out)
    );
    // A student reads the translations as its training split.
    let student_config = dir.path().join("student.toml");
    let mut text = std::fs::read_to_string(config).unwrap();
    text = text.replace(
        "[data]\n",
        &format!(
            "[data]\ntrain = [{:?}, {:?}]\n",
            data.join("train.src"),
            data.join("train.tgt")
        ),
    );
    std::fs::write(&student_config, text).unwrap();
    let student = dir.path().join("student");
    let out = seqls(&[
        "train",
        "--config",
        student_config.to_str().unwrap(),
        "--run-dir",
        student.to_str().unwrap(),
        "--max-epochs",
        "1",
        "--quiet",
        "--threads",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let empty = tgt.lines().filter(|l| l.trim().is_empty()).count();
    assert!(
        stderr(&out).contains(&format!(" train pairs ({empty} empty skipped")),
        "{}",
        stderr(&out)
    );
}

/// The distillation study of `seqls sweep` (`[distill]`): teachers, word- and sequence-level students,
/// a references-only student, the report's table and figure, the plan.
#[test]
fn a_distillation_sweep_trains_every_student_and_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tiny-distill.toml");
    let out_dir = dir.path().to_str().unwrap();
    let out = sweep(config, out_dir);
    assert!(out.status.success(), "{}", stderr(&out));
    for student in [
        "word-T2-w0.5-a0-s1",
        "word-T2-w0.5-a0.1-s1",
        "seq-b2-a0-s1",
        "seq-b2-a0.1-s1",
        "ref-s1",
    ] {
        let run = dir.path().join("students").join(student);
        for f in [
            "metrics.json",
            "eval-test-beam1.json",
            "eval-test-beam2.json",
        ] {
            assert!(run.join(f).exists(), "{student}/{f} missing");
        }
    }
    // Word-level students share their teacher's tokenizer; sequence-level ones read its translations.
    assert_eq!(
        std::fs::read(
            dir.path()
                .join("students/word-T2-w0.5-a0.1-s1/tokenizer.json")
        )
        .unwrap(),
        std::fs::read(dir.path().join("a0.1-s1/tokenizer.json")).unwrap()
    );
    let student_config =
        std::fs::read_to_string(dir.path().join("students/seq-b2-a0.1-s1.toml")).unwrap();
    assert!(
        student_config.contains("students/data/a0.1-s1-beam2/train.tgt"),
        "{student_config}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("students/data/a0.1-s1-beam2/train.tgt"))
            .unwrap()
            .lines()
            .count(),
        300
    );
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    for needle in [
        "## Distillation: is a smoothed teacher a worse teacher?",
        "| word T=2 β=0.5 | 0.1 | 1 |",
        "| seq beam 2 | 0 | 1 |",
        "| references α=0 | – | 1 |",
        "Each student against the student of the same kind",
        "Each student against the student trained on the references alone with α = 0",
        "- test: BLEU at beam 2",
        "the seq beam 2 student of the α = 0.1 teacher",
        "the references α=0 student",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}");
    }
    assert!(
        dir.path()
            .join("figures/distill-bleu-vs-teacher-alpha-test.png")
            .exists()
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    // Per kind: the α = 0.1 teacher's student against the α = 0 teacher's (2), and every taught
    // student against the references-only one (4).
    let against: Vec<&str> = report["distillation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["baseline"]["against"].as_str().unwrap())
        .collect();
    assert_eq!(
        against,
        [
            "teacher",
            "teacher",
            "references",
            "references",
            "references",
            "references"
        ]
    );
    // Everything is finished: a second sweep trains nothing.
    let again = sweep(config, out_dir);
    assert!(again.status.success());
    assert!(
        !stderr(&again).contains("== training"),
        "{}",
        stderr(&again)
    );
    let plan = seqls(&["sweep", "--config", config, "--out", out_dir, "--plan"]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("seqls distill-data"))
            .count(),
        2
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("seqls train"))
            .count(),
        7
    );
}
