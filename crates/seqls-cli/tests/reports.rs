//! The committed studies: `seqls report` rebuilds each report (and the Findings block of its README)
//! byte for byte from the committed files, without weights or corpus, and no README quotes a decimal
//! number that its report does not contain (`report.md`, the tables of `report.html`, or the verbatim
//! report of a study it replaced, kept in a subfolder). With the corpus (`SEQLS_DATA_DIR`) it also
//! rebuilds `report.html` and `compare.json` byte for byte.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every directory under `eval/` that is a sweep (has a `sweep.toml`).
fn studies() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join("eval"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("sweep.toml").exists())
        .collect();
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The decimal numbers of a text (`12.34`, `-0.5`, `0.0327`), without sign; a dotted version such as
/// `2.6.0` is not a number.
fn decimals(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit()
            && (i == 0 || !(chars[i - 1].is_ascii_digit() || chars[i - 1] == '.'))
        {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let token: String = chars[start..i].iter().collect();
            let token = token.trim_end_matches('.');
            if token.matches('.').count() == 1 {
                out.push(token.to_string());
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The reports a study keeps of the studies it replaced, verbatim (`<study>/<folder>/report.md`, e.g.
/// `first-study/`), which its README may quote when it says what changed.
fn kept_reports(study: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(study).unwrap() {
        let path = entry.unwrap().path().join("report.md");
        if path.is_file() {
            out.push(std::fs::read_to_string(path).unwrap());
        }
    }
    out
}

/// The README's prose: code blocks, the generated Findings block and the paragraphs that describe
/// the setting rather than results (`**Setting**`, `**Status**`, `**Hardware…`) left out.
fn prose(readme: &str) -> String {
    let mut out = String::new();
    let (mut code, mut findings, mut setting) = (false, false, false);
    for line in readme.lines() {
        if ["**Setting**", "**Status**", "**Hardware"]
            .iter()
            .any(|p| line.starts_with(p))
        {
            setting = true;
        }
        if line.trim().is_empty() {
            setting = false;
        }
        if setting {
            continue;
        }
        if line.starts_with("```") {
            code = !code;
            continue;
        }
        if line.contains("findings:begin") {
            findings = true;
        }
        if line.contains("findings:end") {
            findings = false;
            continue;
        }
        if !code && !findings {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `seqls report` run on a copy of `study` (as `eval/<name>`, the name the report gives itself), with
/// the corpus at `data` or without any: the temporary directory and the copy.
fn rebuilt(study: &Path, data: Option<&Path>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("eval/{}", study.file_name().unwrap().to_str().unwrap());
    let copy = dir.path().join(&name);
    copy_dir(study, &copy);
    let mut command = Command::new(env!("CARGO_BIN_EXE_seqls"));
    command
        .args(["report", &name, "--threads", "1"])
        .current_dir(dir.path());
    match data {
        Some(data) => command.env("SEQLS_DATA_DIR", data),
        None => command.env_remove("SEQLS_DATA_DIR"),
    };
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        study.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, copy)
}

#[test]
fn committed_reports_rebuild_byte_for_byte_and_readmes_quote_only_their_numbers() {
    let studies = studies();
    assert!(studies.len() >= 3, "{studies:?}");
    for study in studies {
        let (_dir, copy) = rebuilt(&study, None);
        for file in ["report.md", "README.md"] {
            let committed = std::fs::read_to_string(study.join(file)).unwrap();
            let rebuilt = std::fs::read_to_string(copy.join(file)).unwrap();
            assert!(
                committed == rebuilt,
                "{}/{file} differs from what `seqls report` writes: run it and commit the result",
                study.display()
            );
        }
        let report = std::fs::read_to_string(study.join("report.md")).unwrap();
        let page = std::fs::read_to_string(study.join("report.html")).unwrap();
        let known: std::collections::HashSet<String> = decimals(&report)
            .into_iter()
            .chain(decimals(&page_text(&page)))
            .chain(kept_reports(&study).iter().flat_map(|r| decimals(r)))
            .collect();
        let readme = std::fs::read_to_string(study.join("README.md")).unwrap();
        let missing: Vec<String> = decimals(&prose(&readme))
            .into_iter()
            .filter(|n| !known.contains(n))
            .collect();
        assert!(
            missing.is_empty(),
            "{}/README.md quotes numbers its report does not contain: {missing:?}",
            study.display()
        );
    }
}

/// A page's text without its figures (`<svg>…</svg>`) and scripts (`<script>…</script>`, where the
/// explorer's data lives): the numbers of its tables and prose.
fn page_text(html: &str) -> String {
    let mut text = String::new();
    let mut rest = html;
    loop {
        let next = ["<svg", "<script"]
            .iter()
            .filter_map(|open| rest.find(open).map(|at| (at, *open)))
            .min();
        let Some((at, open)) = next else {
            text.push_str(rest);
            return text;
        };
        text.push_str(&rest[..at]);
        let close = if open == "<svg" {
            "</svg>"
        } else {
            "</script>"
        };
        rest = match rest[at..].find(close) {
            Some(end) => &rest[at + end + close.len()..],
            None => "",
        };
    }
}

#[test]
fn committed_pages_rebuild_byte_for_byte_with_the_corpus() {
    let Some(data) = seqls_data::multi30k::test_data_dir(&root()) else {
        return;
    };
    for study in studies() {
        let (_dir, copy) = rebuilt(&study, Some(&data));
        for file in ["report.html", "compare.json"] {
            // `compare.json` exists once two α's have evaluations to compare; a study with one
            // (in progress) has none, and its rebuild must write none either.
            let committed = std::fs::read(study.join(file)).ok();
            let rebuilt = std::fs::read(copy.join(file)).ok();
            assert!(
                committed.is_some() || file == "compare.json",
                "{}/{file} is missing",
                study.display()
            );
            assert!(
                committed == rebuilt,
                "{}/{file} differs from what `seqls report` writes with the corpus: run it and commit the result",
                study.display()
            );
        }
    }
}

#[test]
fn page_text_leaves_out_figures_and_scripts() {
    let html =
        "<p>BLEU 40.58</p><svg><text>320.5</text></svg><td>0.071</td><script>x = 1.5</script>end";
    assert_eq!(page_text(html), "<p>BLEU 40.58</p><td>0.071</td>end");
}

#[test]
fn decimals_are_found_and_versions_are_not() {
    assert_eq!(
        decimals("BLEU 37.93 ± 0.29, Δ = −0.42 [-1.49, +0.59], version:2.6.0, 3 seeds."),
        ["37.93", "0.29", "0.42", "1.49", "0.59"]
    );
}
