//! The α × beam report of a sweep directory: `report.md`, `report.json`, `table.csv`, the figures
//! under `figures/` (PNG and SVG), and the page `report.html` with `compare.json` ([`page`]: what
//! changed between the α's, which needs the corpus's texts).
//!
//! Three steps: [`collect`] reads every finished run (its `metrics.json`, `log.jsonl` and
//! `eval-<split>-beam<K>.json` files, typed: a missing or malformed field is an error naming the
//! file); the tables give, per test split and averaged over the splits, each run's row and with
//! several seeds the mean ± standard deviation per α; the comparisons estimate each α against the
//! smallest one, and the change of the beam-search gain, over seeds (see [`seqls_eval::seeds`]);
//! the figures plot the means with the standard deviation over seeds as error bars.
//!
//! Everything is read from those files, except the penultimate-layer picture, which loads the models
//! of the smallest and the largest α (first seed); without the weights that figure is left as it is.

mod collect;
mod comparisons;
mod cost;
mod distill;
mod figures;
pub mod findings;
mod page;
mod search;
mod tables;

pub use collect::{BeamResult, EpochResult, RunResult, SplitResult, collect};
pub use comparisons::{Comparison, MetricContrasts};
pub use distill::{StudentBaseline, StudentComparison};

use crate::driver::Sweep;
use crate::error::{Result, SweepError};
use burn::tensor::Device;
use collect::MEAN_OVER_SPLITS;
use comparisons::{BOOTSTRAP_SAMPLES, comparison_tables, comparisons};
use figures::{FigureDir, write_figures};
use std::fmt::Write as _;
use std::path::Path;
use tables::{Column, columns, split_tables};

/// What every column and comparison of the report means.
fn definitions(md: &mut String, sweep: &Sweep) -> Result<()> {
    let grid = &sweep.config.sweep;
    writeln!(
        md,
        "BLEU: sacreBLEU on detokenised output, `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`. \
         NLL per reference token (`</s>` included), nats. ECE/MCE/adaptive ECE: teacher-forced top-class \
         confidence on the test references, {bins} bins, `</s>` included. `</s>` ECE: the end of sentence \
         alone, teacher forced: at every reference position p(`</s>`) as the confidence that the sentence \
         ends there, against whether the reference does (Kumar & Sarawagi 2019). T*: the temperature minimising \
         validation NLL; ECE@T*: test ECE at T*. chrF bK: sacreBLEU's chrF2 (`nc:6|nw:0|space:no`) at beam K. len bK: hypothesis/reference length ratio (13a tokens) at \
         beam K. Inference ECE: confidence of each token the beam-{compare} search produced vs whether an \
         edit-distance alignment to the reference matches it (Wang et al. 2020). Oracle (synthetic corpus \
         only): oracle gap = mean |p − q| between the model's and the generator's probability of each reference word, \
         and ECE against q. H(q)/ln(K−1), KL(q‖u), top-5 q (validation split, teacher forced): the model's \
         distribution over the K − 1 non-reference tokens, renormalised, as its entropy relative to uniform, \
         its KL divergence from uniform (nats) and the mass of its five largest entries, averaged over \
         positions: what the logits say beyond the reference, which label smoothing is said to erase \
         (Müller et al. 2019). \"{MEAN_OVER_SPLITS}\": each number averaged over the test sets. \
         Comparisons: Δ is the mean over seeds of the per-seed corpus-BLEU difference (seed s of α against \
         seed s of the baseline: same initialisation and batch order); the crossed bootstrap \
         ({BOOTSTRAP_SAMPLES} resamples) draws seeds with replacement and one resample of the test sentences \
         shared by every drawn seed and system (every seed translated the same sentences), so its interval \
         holds both the training-seed and the test-set variance, each once; the t-test over seeds treats the \
         test set as fixed (df = S − 1); the sign-flip test enumerates the 2^S sign patterns of the per-seed \
         differences (its p cannot go below 2/2^S); \"smallest detectable\": the effect detected with 80% power at \
         5%, by the bootstrap 2.80·se (se: the standard deviation of its resamples) and by the t-test \
         (t(0.975, S−1) + t(0.8, S−1))·sd/√S from the seed spread alone. p (Holm): the \
         bootstrap p-value adjusted over every comparison of this report except the primary contrast \
         (`sweep.primary`). With one seed the bootstrap reduces to the paired bootstrap over sentences \
         (Koehn 2004). Δ chrF: the same contrast in chrF, on the same resamples (its interval only; the \
         verdicts follow BLEU). Search: {}.\n",
        serde_json::to_string(&sweep.config.decode)?,
        compare = grid.compare_beam,
        bins = seqls_eval::calibration::DEFAULT_BINS,
    )?;
    Ok(())
}

/// Training time and the validation of every epoch, per run.
fn epoch_table(md: &mut String, runs: &[RunResult]) -> Result<()> {
    writeln!(md, "## Training time and validation per epoch\n")?;
    writeln!(
        md,
        "| α | seed | threads | train s | greedy valid BLEU per epoch | valid NLL per epoch |\n|---|---|---|---|---|---|"
    )?;
    for r in runs {
        let bleus: Vec<String> = r
            .epochs
            .iter()
            .map(|e| e.greedy_bleu.map_or("–".into(), |b| format!("{b:.2}")))
            .collect();
        let nlls: Vec<String> = r.epochs.iter().map(|e| format!("{:.3}", e.nll)).collect();
        writeln!(
            md,
            "| {} | {} | {} | {:.0} | {} | {} |",
            r.alpha,
            r.seed,
            r.threads,
            r.train_seconds,
            bleus.join(", "),
            nlls.join(", ")
        )?;
    }
    Ok(())
}

/// The figures, each under its title, and how the penultimate-layer picture is made.
fn figure_list(md: &mut String, figures: &[(String, String)]) -> Result<()> {
    writeln!(md, "## Figures\n")?;
    for (title, stem) in figures {
        writeln!(
            md,
            "### {title}\n\n![{title}]({stem}.png) ([SVG]({stem}.svg))\n"
        )?;
    }
    writeln!(
        md,
        "Penultimate-layer picture (Müller, Kornblith & Hinton 2019, Figure 1, for translation): the \
         three most frequent word tokens of the test references are chosen; the plane through their \
         three output-embedding vectors gets an orthonormal basis (e1 along w2 − w1, e2 the \
         Gram–Schmidt remainder of w3 − w1); the decoder's final hidden state at each test position \
         whose reference is one of the three tokens (teacher forced, up to 300 per token) is projected \
         onto it, relative to w1; crosses mark the three templates. Left: the smallest α, right: the largest.\n"
    )?;
    Ok(())
}

/// The commands that continue the sweep and rebuild the report.
fn reproduce(md: &mut String, dir: &Path) -> Result<()> {
    writeln!(
        md,
        "## Reproduce\n\n```\nseqls sweep --config {d}/sweep.toml --out {d}    # finished jobs are skipped\nseqls report {d}                                  # tables and figures from finished jobs\nseqls sweep --config {d}/sweep.toml --out {d} --plan   # one command per job\n```",
        d = dir.display()
    )?;
    Ok(())
}

/// Assembles the report of the sweep directory `dir` from its finished jobs; returns the markdown.
pub fn write_report(dir: &Path, device: &Device) -> Result<String> {
    let sweep = Sweep::open(dir)?;
    let runs = collect(&sweep)?;
    if runs.is_empty() {
        return Err(SweepError::NoFinishedRuns(dir.to_path_buf()));
    }
    let grid = &sweep.config.sweep;
    let all_cols = columns(&grid.beams, grid.compare_beam);
    // Drop columns that no row has (oracle columns outside the synthetic corpus).
    let cols: Vec<&Column> = all_cols
        .iter()
        .filter(|c| {
            runs.iter()
                .any(|r| r.splits.iter().any(|s| (c.value)(r, s).is_some()))
        })
        .collect();
    let mut sections: Vec<&str> = sweep.test_splits.iter().map(String::as_str).collect();
    if sections.len() > 1 {
        sections.push(MEAN_OVER_SPLITS);
    }

    let mut md = String::new();
    let mut csv = String::from("split,alpha,seed");
    for c in &cols {
        write!(csv, ",{}", c.header.replace(' ', "_"))?;
    }
    csv.push_str(",threads\n");
    let seeds_present: std::collections::BTreeSet<u64> = runs.iter().map(|r| r.seed).collect();
    writeln!(
        md,
        "# seqls sweep: {}\n\n{} finished runs: α ∈ {{{}}}, seeds {{{}}}; test sets: {}.\n",
        sweep.config.name,
        runs.len(),
        grid.alphas
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        seeds_present
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        sweep.test_splits.join(", ")
    )?;
    let mut comparisons_all = Vec::new();
    for split in &sweep.test_splits {
        comparisons_all.extend(comparisons(&sweep, &runs, split)?);
    }
    findings::adjust(&mut comparisons_all, grid.primary.as_ref());
    let distillation = distill::compare_students(&sweep)?;
    let student_comparisons = distillation
        .as_ref()
        .map_or(&[][..], |d| d.comparisons.as_slice());
    let findings = findings::findings(&comparisons_all, student_comparisons);
    if let Some(p) = &grid.primary
        && !comparisons_all.iter().any(|c| c.primary)
    {
        writeln!(
            md,
            "**Note**: the declared primary contrast (α = {} at beam {} on {}) has no comparison in this \
             report; every comparison below is Holm-adjusted.\n",
            p.alpha, p.beam, p.split
        )?;
    }
    if !findings.is_empty() {
        let adjusted = if student_comparisons.is_empty() {
            "Holm-adjusted over every comparison but the primary one"
        } else {
            "Holm-adjusted within its family: the α comparisons but the primary one; the students against \
             the smallest-α teacher's; the students against the references-only student"
        };
        writeln!(
            md,
            "## Findings\n\nGenerated from the comparisons below: \"higher\" or \"lower\" only where the 95% interval \
             excludes zero and the p-value is below 0.05 ({adjusted}).\n\n{}\n{findings}{}\n",
            findings::FINDINGS_BEGIN,
            findings::FINDINGS_END
        )?;
    }
    for split in &sections {
        writeln!(md, "## {split}\n")?;
        split_tables(&mut md, &mut csv, &sweep, &runs, split, &cols)?;
        if *split != MEAN_OVER_SPLITS {
            comparison_tables(&mut md, split, &comparisons_all)?;
        }
        writeln!(md)?;
    }
    definitions(&mut md, &sweep)?;
    epoch_table(&mut md, &runs)?;

    let mut figure_dir = FigureDir {
        dir: sweep.dir.join("figures"),
        written: write_figures(&sweep, &runs, device)?,
    };
    writeln!(md)?;
    let search = search::write_search(&mut md, &sweep, &mut figure_dir)?;
    if let Some(d) = &distillation {
        distill::write_distillation(&mut md, &sweep, d, &runs, &mut figure_dir)?;
    }
    cost::write_cost(&mut md, &sweep, &runs, &search)?;
    let figures = figure_dir.written;
    figure_list(&mut md, &figures)?;
    reproduce(&mut md, dir)?;
    seqls_data::write::write_atomic(&dir.join("report.md"), md.as_bytes())?;
    page::write_page(&sweep, &runs, &md, dir)?;
    findings::update_readme_findings(&dir.join("README.md"), &findings)?;
    seqls_data::write::write_atomic(&dir.join("table.csv"), csv.as_bytes())?;
    seqls_data::write::write_atomic(
        &dir.join("report.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "config": sweep.config.name,
            "test_splits": sweep.test_splits,
            "runs": runs,
            "comparisons": comparisons_all,
            "search": search,
            "distillation": student_comparisons,
            "figures": figures,
        }))?
        .as_bytes(),
    )?;
    Ok(md)
}
