//! `seqls compare --ref REF [NAME=]HYP [NAME=]HYP ... --out DIR`: compare-mt's analyses of any
//! hypothesis files against one reference, plus word confidence where probabilities are given,
//! into `DIR/compare.json` and the page `DIR/compare.html` (see [`seqls_compare`]).

use anyhow::{Context, bail};
use clap::Args;
use seqls_compare::page::{Page, Section, render};
use seqls_compare::probs::parse_word_probs;
use seqls_compare::words::WordCounts;
use seqls_compare::{Inputs, Options, System, compare};
use seqls_data::read::read_lines;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Hypothesis files, one sentence per line, each optionally named: `NAME=FILE` (else the path as
    /// given). The first is the baseline.
    #[arg(required = true, num_args = 2..)]
    hyps: Vec<String>,
    /// The reference, one sentence per line
    #[arg(long = "ref", short = 'r')]
    reference: PathBuf,
    /// The sources, shown in the sentence explorer
    #[arg(long)]
    src: Option<PathBuf>,
    /// The training targets, whose word counts make the frequency buckets (compare-mt's
    /// `freq_corpus_file`; without it, the reference's own counts, as compare-mt does)
    #[arg(long)]
    freq_corpus: Option<PathBuf>,
    /// Word probabilities of a system's output (`NAME=FILE`, the format `seqls eval` writes as
    /// `eval-<split>-beam<K>.word-probs.txt`)
    #[arg(long = "word-probs")]
    word_probs: Vec<String>,
    /// Sentences listed per contrast where one system gains most, and where it loses most
    #[arg(long, default_value_t = 10)]
    examples: usize,
    /// N-grams listed per contrast and direction
    #[arg(long, default_value_t = 15)]
    ngrams: usize,
    /// Output directory (created)
    #[arg(long)]
    out: PathBuf,
}

/// `NAME=FILE` → (NAME, FILE); `FILE` → (FILE as given, FILE).
fn named(arg: &str) -> (String, PathBuf) {
    match arg.split_once('=') {
        Some((name, file)) if !name.is_empty() => (name.to_string(), PathBuf::from(file)),
        _ => (arg.to_string(), PathBuf::from(arg)),
    }
}

/// The lines of `path`, which must be as many as the reference's.
fn lines_like(path: &Path, reference: &Path, expected: usize) -> anyhow::Result<Vec<String>> {
    let lines = read_lines(path)?;
    if lines.len() != expected {
        bail!(
            "{}: {} lines, but the reference {} has {expected}",
            path.display(),
            lines.len(),
            reference.display()
        );
    }
    Ok(lines)
}

pub fn run(args: CompareArgs) -> anyhow::Result<()> {
    let references = read_lines(&args.reference)?;
    if references.is_empty() {
        bail!("{}: the reference is empty", args.reference.display());
    }
    let n = references.len();
    let sources = match &args.src {
        Some(src) => Some(lines_like(src, &args.reference, n)?),
        None => None,
    };
    let mut probs: Vec<(String, PathBuf)> = args.word_probs.iter().map(|a| named(a)).collect();
    let mut systems = Vec::new();
    for arg in &args.hyps {
        let (name, path) = named(arg);
        if systems.iter().any(|s: &System| s.name == name) {
            bail!("two systems are named {name:?}: name them NAME=FILE");
        }
        let outputs = lines_like(&path, &args.reference, n)?;
        let word_probs = match probs.iter().position(|(p, _)| *p == name) {
            Some(i) => {
                let (_, file) = probs.remove(i);
                Some(parse_word_probs(
                    &lines_like(&file, &args.reference, n)?,
                    &file,
                )?)
            }
            None => None,
        };
        systems.push(System {
            name,
            outputs,
            word_probs,
            search: None,
        });
    }
    if let Some((name, file)) = probs.first() {
        bail!(
            "--word-probs {name}={}: no hypothesis file is named {name:?}",
            file.display()
        );
    }
    let counts = match &args.freq_corpus {
        Some(path) => WordCounts::from_lines(read_lines(path)?.iter().map(String::as_str)),
        None => WordCounts::from_lines(references.iter().map(String::as_str)),
    };
    let inputs = Inputs {
        sources,
        references,
        systems,
        counts,
    };
    let options = Options {
        examples: args.examples,
        ngrams: args.ngrams,
    };
    let comparison = compare(&inputs, options)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    seqls_data::write::write_atomic(
        &args.out.join("compare.json"),
        serde_json::to_string_pretty(&comparison)?.as_bytes(),
    )?;
    let page = Page {
        title: format!("seqls compare: {}", args.reference.display()),
        report: None,
        notes: Vec::new(),
        sections: vec![Section {
            title: args.reference.display().to_string(),
            comparison: &comparison,
            inputs: &inputs,
        }],
    };
    seqls_data::write::write_atomic(&args.out.join("compare.html"), render(&page).as_bytes())?;
    for (s, name) in comparison.systems.iter().enumerate() {
        println!(
            "{name}: BLEU {:.2}, length ratio {:.3}",
            comparison.corpus[s].bleu, comparison.corpus[s].length_ratio
        );
    }
    println!(
        "wrote {} and {}",
        args.out.join("compare.json").display(),
        args.out.join("compare.html").display()
    );
    Ok(())
}
