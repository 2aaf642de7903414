//! The report's Search section (with `[sweep.search]`): per test set, BLEU against beam size under
//! each ranking, empty and short outputs, search errors against exact search, and the exact-search
//! table, each as mean ± standard deviation over the seeds of an α. Built from the runs'
//! `search-<split>.json` alone ([`crate::per_run::search_analysis`]), so it needs neither weights nor corpus.

use crate::driver::Sweep;
use crate::error::Result;
use crate::per_run::search_analysis::{SearchPoint, SearchReport, search_file};
use crate::report::figures::FigureDir;
use crate::report::tables::{group_by_alpha, mean_std};
use seqls_decode::LengthPenalty;
use seqls_plot::{LineChart, Series};
use serde::Serialize;
use std::fmt::Write as _;

/// One run's analysis of one split, as `report.json` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    pub alpha: f64,
    pub seed: u64,
    pub report: SearchReport,
}

/// Reads every finished analysis of the sweep's runs, in the sweep's (α, seed) order.
fn collect(sweep: &Sweep) -> Result<Vec<SearchResult>> {
    let mut out = Vec::new();
    for job in sweep.trainings() {
        for split in &sweep.test_splits {
            let path = search_file(&job.run, split);
            if path.exists() {
                out.push(SearchResult {
                    alpha: job.alpha,
                    seed: job.seed,
                    report: SearchReport::read(&path)?,
                });
            }
        }
    }
    Ok(out)
}

/// `mean ± sd` of the values, or `–` when there are none.
fn cell(values: &[f64], scale: f64, digits: usize) -> String {
    if values.is_empty() {
        return "–".into();
    }
    let (m, sd) = mean_std(values);
    if values.len() == 1 {
        format!("{:.digits$}", m * scale)
    } else {
        format!("{:.digits$} ± {:.digits$}", m * scale, sd * scale)
    }
}

/// The results of one split grouped by α (the sweep's order), skipping α without results.
fn by_alpha<'a>(
    sweep: &Sweep,
    results: &'a [SearchResult],
    split: &str,
) -> Vec<(f64, Vec<&'a SearchReport>)> {
    group_by_alpha(
        &sweep.config.sweep.alphas,
        results
            .iter()
            .filter(|r| r.report.split == split)
            .map(|r| (r.alpha, &r.report)),
    )
}

fn point(report: &SearchReport, beam: usize, ranking: LengthPenalty) -> Option<&SearchPoint> {
    report
        .points
        .iter()
        .find(|p| p.beam == beam && p.ranking == ranking)
}

/// One table: rows α, columns beam sizes, cells `value` (mean ± sd over seeds, × `scale`).
fn beam_table(
    md: &mut String,
    groups: &[(f64, Vec<&SearchReport>)],
    beams: &[usize],
    ranking: LengthPenalty,
    value: fn(&SearchPoint) -> Option<f64>,
    scale: f64,
    digits: usize,
) -> Result<()> {
    write!(md, "| α | seeds |")?;
    for b in beams {
        write!(md, " beam {b} |")?;
    }
    write!(md, "\n|---|---|")?;
    for _ in beams {
        write!(md, "---|")?;
    }
    writeln!(md)?;
    for (alpha, group) in groups {
        write!(md, "| {alpha} | {} |", group.len())?;
        for &b in beams {
            let values: Vec<f64> = group
                .iter()
                .filter_map(|r| point(r, b, ranking).and_then(value))
                .collect();
            write!(md, " {} |", cell(&values, scale, digits))?;
        }
        writeln!(md)?;
    }
    writeln!(md)?;
    Ok(())
}

/// One line per α of `value` against beam size, error bars over seeds.
fn beam_series(
    groups: &[(f64, Vec<&SearchReport>)],
    beams: &[usize],
    ranking: LengthPenalty,
    value: fn(&SearchPoint) -> Option<f64>,
    scale: f64,
) -> Vec<Series> {
    groups
        .iter()
        .map(|(alpha, group)| {
            let mut s = Series::new(format!("α = {alpha}"), Vec::new());
            for &b in beams {
                let ys: Vec<f64> = group
                    .iter()
                    .filter_map(|r| point(r, b, ranking).and_then(value))
                    .map(|y| y * scale)
                    .collect();
                if !ys.is_empty() {
                    let (m, sd) = mean_std(&ys);
                    s.points.push((b as f64, m));
                    s.errors.push(sd);
                }
            }
            s
        })
        .collect()
}

/// Writes the Search section into `md` and its figures; returns what `report.json` lists.
pub(crate) fn write_search(
    md: &mut String,
    sweep: &Sweep,
    figures: &mut FigureDir,
) -> Result<Vec<SearchResult>> {
    let results = collect(sweep)?;
    let Some(analysis) = &sweep.config.sweep.search else {
        return Ok(results);
    };
    if results.is_empty() {
        return Ok(results);
    }
    let beams = &analysis.beams;
    let unnormalised = LengthPenalty::Power(0.0);
    writeln!(
        md,
        "## Search: does smoothing change what beam search and exact search find?\n\n\
         Beam sizes {beams:?}; rankings of the finished hypotheses: {} (`none` = Σ log p, `power-A` = Σ log p / \
         length^A, `gnmt-A` = Σ log p / ((5 + length)/6)^A); one beam search per size answers for every ranking. \
         Cells are mean ± standard deviation over the seeds of an α. Exact search: the first {} sentences of each \
         test set, at most {} scored prefixes per sentence.\n",
        analysis
            .rankings
            .iter()
            .map(|r| format!("`{}`", r.label()))
            .collect::<Vec<_>>()
            .join(", "),
        analysis.exact_sentences,
        analysis.max_expansions
    )?;
    for split in &sweep.test_splits {
        let groups = by_alpha(sweep, &results, split);
        if groups.is_empty() {
            continue;
        }
        writeln!(md, "### Search on {split}\n")?;
        for &ranking in &analysis.rankings {
            writeln!(md, "BLEU, ranking `{}`:\n", ranking.label())?;
            beam_table(md, &groups, beams, ranking, |p| Some(p.bleu), 1.0, 2)?;
            figures.save(
                &format!("search-bleu-{}-{split}", ranking.label()),
                &format!(
                    "{split}: BLEU against beam size, ranking {}",
                    ranking.label()
                ),
                &LineChart {
                    title: format!("{split}, ranking {}", ranking.label()),
                    x_label: "beam size".into(),
                    y_label: "BLEU".into(),
                    series: beam_series(&groups, beams, ranking, |p| Some(p.bleu), 1.0),
                    log2_x: true,
                },
            )?;
        }
        let unnormalised_tables: [(&str, fn(&SearchPoint) -> Option<f64>, f64, usize); 5] = [
            (
                "Length ratio (hypothesis / reference)",
                |p| Some(p.length_ratio),
                1.0,
                3,
            ),
            ("Empty outputs (%)", |p| Some(p.empty), 100.0, 1),
            (
                "Outputs shorter than half their reference (%)",
                |p| Some(p.short),
                100.0,
                1,
            ),
            (
                "Sentences whose reference scores above the output (%; a search error by definition)",
                |p| Some(p.reference_beats_output),
                100.0,
                1,
            ),
            (
                "Sentences whose empty translation scores above the output (%)",
                |p| Some(p.empty_beats_output),
                100.0,
                1,
            ),
        ];
        for (title, value, scale, digits) in unnormalised_tables {
            writeln!(md, "{title}, ranking `none`:\n")?;
            beam_table(md, &groups, beams, unnormalised, value, scale, digits)?;
        }
        figures.save(
            &format!("search-empty-{split}"),
            &format!("{split}: empty outputs against beam size, ranking none"),
            &LineChart {
                title: format!("{split}: empty outputs, ranking none"),
                x_label: "beam size".into(),
                y_label: "empty outputs (%)".into(),
                series: beam_series(&groups, beams, unnormalised, |p| Some(p.empty), 100.0),
                log2_x: true,
            },
        )?;
        if analysis.exact_sentences > 0 {
            for &ranking in &analysis.rankings {
                writeln!(
                    md,
                    "Search errors (% of the exact subset whose output scores below exact search's best), ranking `{}`:\n",
                    ranking.label()
                )?;
                beam_table(md, &groups, beams, ranking, |p| p.search_errors, 100.0, 1)?;
            }
            figures.save(
                &format!("search-errors-{split}"),
                &format!("{split}: search errors against beam size, ranking none"),
                &LineChart {
                    title: format!("{split}: search errors, ranking none"),
                    x_label: "beam size".into(),
                    y_label: "search errors (% of sentences)".into(),
                    series: beam_series(&groups, beams, unnormalised, |p| p.search_errors, 100.0),
                    log2_x: true,
                },
            )?;
            exact_table(md, &groups)?;
        }
        if analysis.control_beam > 0 {
            controls_table(md, &groups, analysis.control_beam)?;
        }
    }
    Ok(results)
}

/// The controls of one split: per α, mean ± sd over seeds.
fn controls_table(
    md: &mut String,
    groups: &[(f64, Vec<&SearchReport>)],
    beam: usize,
) -> Result<()> {
    writeln!(
        md,
        "Controls at beam {beam}: each run's own ranking at T = 1; the ranking with the best validation BLEU \
         (power and GNMT exponents 0–2 in steps of 0.2) applied to this test set; and decoding at the \
         temperature T* that minimises validation NLL (temperature scaling, the post-hoc calibration of Müller \
         et al.):\n\n\
         | α | seeds | BLEU | length ratio | tuned rankings | BLEU, tuned | length ratio, tuned | T* | BLEU at T* | length ratio at T* |\n\
         |---|---|---|---|---|---|---|---|---|---|"
    )?;
    for (alpha, group) in groups {
        let rows: Vec<&crate::per_run::search_analysis::Controls> =
            group.iter().filter_map(|r| r.controls.as_ref()).collect();
        if rows.is_empty() {
            continue;
        }
        let f = |v: fn(&crate::per_run::search_analysis::Controls) -> f64, digits: usize| {
            cell(&rows.iter().map(|c| v(c)).collect::<Vec<_>>(), 1.0, digits)
        };
        let rankings: Vec<String> = rows.iter().map(|c| c.tuned_ranking.label()).collect();
        writeln!(
            md,
            "| {alpha} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            rows.len(),
            f(|c| c.default_bleu, 2),
            f(|c| c.default_length_ratio, 3),
            rankings.join(", "),
            f(|c| c.tuned_bleu, 2),
            f(|c| c.tuned_length_ratio, 3),
            f(|c| c.fitted_temperature, 3),
            f(|c| c.fitted_bleu, 2),
            f(|c| c.fitted_length_ratio, 3),
        )?;
    }
    writeln!(md)?;
    Ok(())
}

/// The exact-search table of one split: per α, mean ± sd over seeds.
fn exact_table(md: &mut String, groups: &[(f64, Vec<&SearchReport>)]) -> Result<()> {
    writeln!(
        md,
        "Exact search (the global optimum of Σ log p; \"proven\": optimality shown within the budget, the rest are lower \
         bounds; \"above start\": sentences where it found a translation scoring above the one it started from, the best \
         output of every beam search, with a minimum length the best one long enough):\n\n\
         | α | seeds | search | sentences | proven (%) | above start (%) | BLEU | length ratio | empty (%) | shorter than ½ ref (%) | prefixes / sentence | s / sentence |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for (alpha, group) in groups {
        let kinds: [(
            &str,
            fn(&SearchReport) -> Option<&crate::per_run::search_analysis::ExactSummary>,
        ); 2] = [
            ("exact", |r| r.exact.as_ref()),
            ("exact, min length", |r| r.exact_min_len.as_ref()),
        ];
        for (name, get) in kinds {
            let rows: Vec<_> = group.iter().filter_map(|r| get(r)).collect();
            if rows.is_empty() {
                continue;
            }
            let f = |v: fn(&crate::per_run::search_analysis::ExactSummary) -> f64,
                     scale: f64,
                     digits: usize| {
                cell(
                    &rows.iter().map(|e| v(e)).collect::<Vec<_>>(),
                    scale,
                    digits,
                )
            };
            let name = if rows[0].min_len_ratio > 0.0 {
                format!("{name} (r = {})", rows[0].min_len_ratio)
            } else {
                name.to_string()
            };
            writeln!(
                md,
                "| {alpha} | {} | {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                rows.len(),
                rows[0].sentences,
                f(|e| e.proven as f64 / e.sentences.max(1) as f64, 100.0, 1),
                f(|e| e.improved as f64 / e.sentences.max(1) as f64, 100.0, 1),
                f(|e| e.bleu, 1.0, 2),
                f(|e| e.length_ratio, 1.0, 3),
                f(|e| e.empty, 100.0, 1),
                f(|e| e.short, 100.0, 1),
                f(|e| e.mean_expansions, 1.0, 0),
                f(|e| e.seconds / e.sentences.max(1) as f64, 1.0, 3),
            )?;
        }
    }
    writeln!(md)?;
    Ok(())
}
