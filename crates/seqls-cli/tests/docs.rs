//! The documentation states what the code does: the settings that may change on resume are one list
//! ([`seqls_train::SAFE_TO_CHANGE_ON_RESUME`]), shown by `seqls train --help` and in
//! `docs/run-directories.md`.

use std::path::Path;
use std::process::Command;

#[test]
fn the_resume_safe_settings_are_one_list_in_the_docs_and_the_help() {
    let expected: Vec<&str> = seqls_train::SAFE_TO_CHANGE_ON_RESUME.to_vec();
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/run-directories.md"),
    )
    .unwrap();
    let begin = docs
        .find("<!-- resume-safe:begin -->")
        .expect("begin marker");
    let end = docs.find("<!-- resume-safe:end -->").expect("end marker");
    let listed: Vec<&str> = docs[begin..end].split('`').skip(1).step_by(2).collect();
    assert_eq!(listed, expected, "docs/run-directories.md");

    let help = Command::new(env!("CARGO_BIN_EXE_seqls"))
        .args(["train", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains(&expected.join(", ")),
        "`seqls train --help` does not list {expected:?}:\n{help}"
    );
}
