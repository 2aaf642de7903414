//! The report's Cost section: wall-clock hours per α, for the distillation students and in all,
//! summed over the runs — training (`train s`), decoding in `seqls eval` (sentences / sentences per
//! second, every beam and test set; its teacher-forced passes are not timed) and, with
//! `[sweep.search]`, the search analysis's beam searches and exact search.

use crate::driver::Sweep;
use crate::error::Result;
use crate::report::collect::{MEAN_OVER_SPLITS, RunResult};
use crate::report::distill::collect_students;
use crate::report::search::SearchResult;
use std::fmt::Write as _;

/// One row: its label (an α, `students` or `all`), its number of runs and its seconds — training,
/// decoding, and with the search analysis beam searches and exact search.
#[derive(Debug, PartialEq)]
struct CostRow {
    label: String,
    runs: usize,
    seconds: Vec<f64>,
}

/// `Σ values` from +0.0 (an empty `f64` sum is −0.0, printed `-0.00`).
fn total(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, |sum, x| sum + x)
}

/// One row per α with runs (the sweep's order), one for the students when there are any, and the
/// total. `search` holds each analysis as `(α, beam seconds, exact seconds)`, `None` without
/// `[sweep.search]` (two columns of seconds instead of four).
fn cost_rows(
    alphas: &[f64],
    runs: &[RunResult],
    search: Option<&[(f64, f64, f64)]>,
    students: &[&RunResult],
) -> Vec<CostRow> {
    let columns = if search.is_some() { 4 } else { 2 };
    let timed = |runs: &[&RunResult]| {
        let training = total(runs.iter().map(|r| r.train_seconds));
        let decoding = total(
            runs.iter()
                .flat_map(|r| r.splits.iter().filter(|s| s.split != MEAN_OVER_SPLITS))
                .flat_map(|s| &s.beams)
                .map(|b| b.decode_seconds),
        );
        vec![training, decoding]
    };
    let mut rows = Vec::new();
    for &alpha in alphas {
        let of_alpha: Vec<&RunResult> = runs.iter().filter(|r| r.alpha == alpha).collect();
        if of_alpha.is_empty() {
            continue;
        }
        let mut seconds = timed(&of_alpha);
        if let Some(search) = search {
            let analyses = || search.iter().filter(|s| s.0 == alpha);
            seconds.push(total(analyses().map(|s| s.1)));
            seconds.push(total(analyses().map(|s| s.2)));
        }
        rows.push(CostRow {
            label: alpha.to_string(),
            runs: of_alpha.len(),
            seconds,
        });
    }
    if !students.is_empty() {
        let mut seconds = timed(students);
        seconds.resize(columns, 0.0);
        rows.push(CostRow {
            label: "students".into(),
            runs: students.len(),
            seconds,
        });
    }
    let all = CostRow {
        label: "all".into(),
        runs: rows.iter().map(|r| r.runs).sum(),
        seconds: (0..columns)
            .map(|c| total(rows.iter().map(|r| r.seconds[c])))
            .collect(),
    };
    rows.push(all);
    rows
}

/// Writes the Cost section of the sweep's runs, their search analyses and its students.
pub(crate) fn write_cost(
    md: &mut String,
    sweep: &Sweep,
    runs: &[RunResult],
    search: &[SearchResult],
) -> Result<()> {
    let analyses: Vec<(f64, f64, f64)> = search
        .iter()
        .map(|s| (s.alpha, s.report.beam_seconds, s.report.exact_seconds))
        .collect();
    let analyses = sweep.config.sweep.search.is_some().then_some(&analyses[..]);
    let students = collect_students(sweep)?;
    let students: Vec<&RunResult> = students.iter().map(|s| &s.result).collect();
    let rows = cost_rows(&sweep.config.sweep.alphas, runs, analyses, &students);
    let (search_note, search_headers, search_rule) = if analyses.is_some() {
        (
            ", and `seqls search-analysis`'s beam searches and exact search",
            " search beams h | exact search h |",
            "---|---|",
        )
    } else {
        ("", "", "")
    };
    writeln!(
        md,
        "## Cost\n\nWall-clock hours summed over the runs, each on its own number of threads (`threads` \
         above; where other work shared the machine, its waits are included) of what the runs time: training, \
         decoding in `seqls eval` (every beam and test set; its teacher-forced passes are not timed)\
         {search_note}.\n\n| α | runs | training h | eval decoding h |{search_headers} total h |\n\
         |---|---|---|---|{search_rule}---|"
    )?;
    let hours = |seconds: f64| format!("{:.2}", seconds / 3600.0);
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row.seconds.iter().map(|&s| hours(s)).collect();
        let sum = hours(total(row.seconds.iter().copied()));
        let sum = if i + 1 == rows.len() {
            format!("**{sum}**")
        } else {
            sum
        };
        writeln!(
            md,
            "| {} | {} | {} | {sum} |",
            row.label,
            row.runs,
            cells.join(" | ")
        )?;
    }
    writeln!(md)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::collect::tests::{run, split};

    #[test]
    fn rows_sum_each_alphas_runs_then_the_students_then_everything() {
        // `split(name, x)` decodes beams 1 and 4 in `x` seconds each; `run` trains 10 seconds.
        let mean = split(MEAN_OVER_SPLITS, 100.0);
        let runs = vec![
            run(0.0, 1, vec![split("a", 1.0), split("b", 2.0), mean]),
            run(0.1, 1, vec![split("a", 3.0)]),
            run(0.0, 2, vec![split("a", 4.0)]),
        ];
        let search = [(0.0, 5.0, 6.0), (0.1, 7.0, 8.0), (0.0, 9.0, 10.0)];
        let student = run(0.0, 1, vec![split("a", 0.5)]);
        let rows = cost_rows(&[0.0, 0.1, 0.2], &runs, Some(&search), &[&student]);
        let row = |label: &str, runs: usize, seconds: Vec<f64>| CostRow {
            label: label.into(),
            runs,
            seconds,
        };
        assert_eq!(
            rows,
            vec![
                // The mean over splits is not a decoding of its own; α = 0.2 has no runs.
                row("0", 2, vec![20.0, 14.0, 14.0, 16.0]),
                row("0.1", 1, vec![10.0, 6.0, 7.0, 8.0]),
                row("students", 1, vec![10.0, 1.0, 0.0, 0.0]),
                row("all", 4, vec![40.0, 21.0, 21.0, 24.0]),
            ]
        );
    }

    #[test]
    fn without_the_search_analysis_two_columns_and_no_negative_zero() {
        let rows = cost_rows(&[0.0], &[run(0.0, 1, vec![])], None, &[]);
        assert_eq!(rows[0].seconds, vec![10.0, 0.0]);
        assert!(rows[0].seconds[1].is_sign_positive());
        assert_eq!(rows[1].label, "all");
    }
}
