//! `seqls compare` and the report page: compare-mt's numbers, clear errors on bad input, and the
//! page of the tiny synthetic sweep opened in a real browser (Debian's `chromium`, headless): the
//! explorer lists the sentences, the filter changes what is shown, no script errors. Without
//! Chromium the browser test skips; `SEQLS_REQUIRE_CHROMIUM=1` (set by `.ci/run`) makes it fail
//! instead. The compare-mt check needs Multi30k (`SEQLS_DATA_DIR`, as the other data tests).

mod common;

use common::{ok, seqls, sweep};
use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> Option<PathBuf> {
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect())
        .unwrap_or_default();
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| dirs.iter().map(move |d| d.join(name)))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("SEQLS_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "SEQLS_REQUIRE_CHROMIUM=1 but no chromium on the PATH"
        );
        eprintln!("notice: no chromium on the PATH, so the page is not opened in a browser");
    }
    found
}

/// Chromium, headless, on `page` with the fragment `state`: (the DOM after the scripts ran, stderr).
fn open(browser: &Path, page: &Path, state: &str, extra: &[&str]) -> (String, String) {
    let url = format!("file://{}#{state}", page.display());
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .args(extra)
        .arg(&url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `<body data-NAME="…">` of a dumped DOM.
fn body_attribute(dom: &str, name: &str) -> Option<String> {
    let body = &dom[dom.find("<body")?..];
    let body = &body[..body.find('>')?];
    let key = format!("data-{name}=\"");
    let start = body.find(&key)? + key.len();
    Some(body[start..start + body[start..].find('"')?].to_string())
}

#[test]
fn tiny_sweep_page_opens_in_chromium_and_its_filter_works() {
    let dir = tempfile::tempdir().unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tiny-sweep.toml");
    let out = dir.path().to_str().unwrap();
    ok(sweep(config, out));
    let page = dir.path().join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: no external script, style, image or link to fetch (the SVG namespace is a name).
    for external in [
        "<script src",
        "<link",
        "src=\"http",
        "href=\"http",
        "url(http",
        "import ",
    ] {
        assert!(!html.contains(external), "{external} in the page");
    }
    assert!(
        dir.path()
            .join("a0.1-s1/eval-test-beam4.word-probs.txt")
            .exists()
    );
    let compare: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("compare.json")).unwrap())
            .unwrap();
    let c = &compare[0]["comparison"];
    assert_eq!(c["systems"], serde_json::json!(["α = 0", "α = 0.1"]));
    assert!(
        c["word_confidence"][1].is_array(),
        "{}",
        c["word_confidence"]
    );
    assert!(c["search"][1]["sentences"].as_u64().unwrap() > 0);
    let sentences = c["sentences"].as_u64().unwrap() as usize;
    // How many sentences the two α's translate differently, from the hypothesis files.
    let lines = |run: &str| -> Vec<String> {
        std::fs::read_to_string(dir.path().join(run).join("eval-test-beam4.hyp.txt"))
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    };
    let (a, b) = (lines("a0-s1"), lines("a0.1-s1"));
    let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    assert!(differ > 0 && differ < sentences, "{differ} of {sentences}");

    let Some(browser) = chromium() else { return };
    let (all, log) = open(&browser, &page, "filter=all&limit=0", &["--dump-dom"]);
    assert_eq!(body_attribute(&all, "errors"), None, "script errors: {log}");
    assert!(!log.contains("Uncaught"), "{log}");
    assert_eq!(
        body_attribute(&all, "matching"),
        Some(sentences.to_string())
    );
    assert_eq!(body_attribute(&all, "rows"), Some(sentences.to_string()));
    assert_eq!(all.matches("data-sentence=").count(), sentences);
    let (changed, _) = open(&browser, &page, "filter=differ&limit=0", &["--dump-dom"]);
    assert_eq!(
        body_attribute(&changed, "matching"),
        Some(differ.to_string())
    );
    assert_eq!(changed.matches("data-sentence=").count(), differ);
    let shot = dir.path().join("explorer.png");
    let screenshot = format!("--screenshot={}", shot.display());
    open(
        &browser,
        &page,
        "filter=differ",
        &[&screenshot, "--window-size=1400,1000"],
    );
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
}

#[test]
fn compare_refuses_files_of_different_lengths_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let reference = write("ref.txt", "a b c\nd e f\n");
    let one = write("one.txt", "a b c\nd e\n");
    let short = write("short.txt", "a b c\n");
    let out_dir = dir.path().join("out");
    let out = seqls(&[
        "compare",
        "--ref",
        &reference,
        &one,
        &short,
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{short}: 1 lines, but the reference {reference} has 2"
        )),
        "{err}"
    );
    assert!(!out_dir.join("compare.json").exists());
    let missing = dir.path().join("missing.txt");
    let out = seqls(&[
        "compare",
        "--ref",
        missing.to_str().unwrap(),
        &one,
        &short,
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.txt"), "{err}");
    let probs = write("probs.txt", "0.5 0.5 0.5\n0.5 2\n");
    let out = seqls(&[
        "compare",
        "--ref",
        &reference,
        &format!("x={one}"),
        &format!("y={one}"),
        "--word-probs",
        &format!("y={probs}"),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{probs}:2: \"2\" is not a probability")),
        "{err}"
    );
}

#[test]
fn word_accuracy_by_frequency_is_compare_mts() {
    let Some(data) =
        seqls_data::multi30k::test_data_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let unzip = |name: &str| {
        let lines = seqls_data::read::read_lines(&data.join(name)).unwrap();
        let p = dir.path().join(name.trim_end_matches(".gz"));
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        p.to_str().unwrap().to_string()
    };
    let (reference, train) = (unzip("test_2016_flickr.en.gz"), unzip("train.en.gz"));
    let study = concat!(env!("CARGO_MANIFEST_DIR"), "/../../eval/multi30k-de-en");
    let out = dir.path().join("out");
    ok(seqls(&[
        "compare",
        "--ref",
        &reference,
        "--freq-corpus",
        &train,
        &format!("{study}/a0-s1/eval-test_2016_flickr-beam4.hyp.txt"),
        &format!("{study}/a0.1-s1/eval-test_2016_flickr-beam4.hyp.txt"),
        "--out",
        out.to_str().unwrap(),
    ]));
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap();
    let fixture = include_str!("fixtures/compare-mt-word-fmeas.txt");
    let rows: Vec<Vec<&str>> = fixture
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("---") && !l.starts_with("frequency"))
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 9);
    for (b, row) in rows.iter().enumerate() {
        assert_eq!(c["frequency_buckets"][b], row[0]);
        for system in 0..2 {
            let ours = c["word_accuracy"][system][b]["f_measure"].as_f64().unwrap();
            assert_eq!(
                format!("{ours:.4}"),
                row[1 + system],
                "bucket {} system {system}",
                row[0]
            );
        }
    }
}
