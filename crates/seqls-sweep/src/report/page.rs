//! `report.html` and `compare.json`: the report as one self-contained page, with what changed between
//! the α's ([`seqls_compare`]) on every test set: each α's outputs at the comparison beam, for the
//! seed that has evaluated the most α's there (the smallest such), the smallest α as the baseline.
//!
//! Per α it reads the run's `eval-<split>-beam<K>.hyp.txt`, its `.word-probs.txt` when present, and
//! its search analysis's exact optima (`search-<split>/exact.hyp.txt`): on that subset an output
//! that differs from the optimum is a search error. The sources, references and training targets
//! (for word frequencies) come from the corpus; without it the page holds the report alone and
//! says why.

use super::collect::RunResult;
use crate::driver::Sweep;
use crate::error::Result;
use crate::per_run::evaluate::word_probs_file;
use crate::per_run::search_analysis::{SearchReport, search_file};
use seqls_compare::page::{Page, Section, render};
use seqls_compare::probs::parse_word_probs;
use seqls_compare::words::WordCounts;
use seqls_compare::{Comparison, Inputs, Options, SearchFlags, System, compare};
use seqls_data::read::read_lines;
use std::path::Path;

/// The seed whose runs cover the most α's evaluated on `split` at `beam` (the smallest such seed),
/// with those α's in the sweep's order.
fn chosen_runs(
    sweep: &Sweep,
    runs: &[RunResult],
    split: &str,
    beam: usize,
) -> Option<(u64, Vec<f64>)> {
    let evaluated = |alpha: f64, seed: u64| {
        runs.iter().any(|r| {
            r.alpha == alpha
                && r.seed == seed
                && r.split(split)
                    .is_some_and(|s| s.beams.iter().any(|b| b.beam == beam))
        })
    };
    let mut seeds: Vec<u64> = runs.iter().map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let mut best: Option<(u64, Vec<f64>)> = None;
    for seed in seeds {
        let alphas: Vec<f64> = sweep
            .config
            .sweep
            .alphas
            .iter()
            .copied()
            .filter(|&a| evaluated(a, seed))
            .collect();
        if best.as_ref().is_none_or(|(_, b)| alphas.len() > b.len()) {
            best = Some((seed, alphas));
        }
    }
    best.filter(|(_, alphas)| alphas.len() >= 2)
}

/// Per sentence of the exact subset: whether `outputs` missed the optimum, and whether it is empty.
fn search_flags(
    sweep: &Sweep,
    alpha: f64,
    seed: u64,
    split: &str,
    outputs: &[String],
) -> Result<Option<Vec<Option<SearchFlags>>>> {
    let run = sweep.run_dir(alpha, seed);
    let file = search_file(&run, split);
    if !file.exists() {
        return Ok(None);
    }
    let Some(exact) = SearchReport::read(&file)?.exact else {
        return Ok(None);
    };
    let optima = read_lines(&run.root.join(&exact.hypotheses_file))?;
    let mut flags = vec![None; outputs.len()];
    for (i, optimum) in optima.iter().enumerate().take(outputs.len()) {
        flags[i] = Some(SearchFlags {
            search_error: *optimum != outputs[i],
            empty_optimum: optimum.trim().is_empty(),
        });
    }
    Ok(Some(flags))
}

/// What every α of one seed produced on `split` at `beam`.
fn inputs(
    sweep: &Sweep,
    (seed, alphas): &(u64, Vec<f64>),
    split: &str,
    beam: usize,
    counts: &WordCounts,
) -> Result<Inputs> {
    let seed = *seed;
    let text = sweep.config.data.load_split(split)?;
    let mut systems = Vec::new();
    for &alpha in alphas {
        let run = sweep.run_dir(alpha, seed);
        let eval = run.eval_file(split, beam);
        let outputs = read_lines(&eval.with_extension("hyp.txt"))?;
        let probs_file = word_probs_file(&eval);
        let word_probs = if probs_file.exists() {
            Some(parse_word_probs(&read_lines(&probs_file)?, &probs_file)?)
        } else {
            None
        };
        let search = search_flags(sweep, alpha, seed, split, &outputs)?;
        systems.push(System {
            name: format!("α = {alpha}"),
            outputs,
            word_probs,
            search,
        });
    }
    Ok(Inputs {
        sources: Some(text.pairs.iter().map(|p| p.src.clone()).collect()),
        references: text.pairs.iter().map(|p| p.tgt.clone()).collect(),
        systems,
        counts: counts.clone(),
    })
}

/// Writes `report.html` (and, where the corpus is at hand, `compare.json`) of the sweep in `dir`.
pub fn write_page(sweep: &Sweep, runs: &[RunResult], markdown: &str, dir: &Path) -> Result<()> {
    let beam = sweep.config.sweep.compare_beam;
    let mut notes = Vec::new();
    let mut compared: Vec<(String, Inputs, Comparison)> = Vec::new();
    match sweep.config.data.load_split("train") {
        Err(e) => notes.push(format!(
            "What changed between the α's is not shown: it needs the corpus's texts ({e})."
        )),
        Ok(train) => {
            let counts = WordCounts::from_lines(train.pairs.iter().map(|p| p.tgt.as_str()));
            for split in &sweep.test_splits {
                let Some(chosen) = chosen_runs(sweep, runs, split, beam) else {
                    notes.push(format!(
                        "{split}: no seed has evaluations of two α's at beam {beam} yet."
                    ));
                    continue;
                };
                let seed = chosen.0;
                let inputs = inputs(sweep, &chosen, split, beam, &counts)?;
                let comparison = compare(&inputs, Options::default())?;
                compared.push((
                    format!("{split}, beam {beam}, seed {seed}"),
                    inputs,
                    comparison,
                ));
            }
        }
    }
    if !compared.is_empty() {
        let json: Vec<serde_json::Value> = compared
            .iter()
            .map(|(title, _, c)| serde_json::json!({ "title": title, "comparison": c }))
            .collect();
        seqls_data::write::write_atomic(
            &dir.join("compare.json"),
            serde_json::to_string_pretty(&json)?.as_bytes(),
        )?;
    }
    let page = Page {
        title: format!("seqls sweep: {}", sweep.config.name),
        report: Some((markdown, dir)),
        notes,
        sections: compared
            .iter()
            .map(|(title, inputs, comparison)| Section {
                title: title.clone(),
                comparison,
                inputs,
            })
            .collect(),
    };
    seqls_data::write::write_atomic(&dir.join("report.html"), render(&page).as_bytes())?;
    Ok(())
}
