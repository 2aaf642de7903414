//! The run tables of a report: one row per run and, with several seeds, the mean ± standard
//! deviation per α, per test split (markdown and `table.csv`).

use crate::driver::Sweep;
use crate::error::Result;
use crate::report::collect::{RunResult, SplitResult};
use std::fmt::Write as _;

/// The value of a column for one run on one split.
type CellValue = Box<dyn Fn(&RunResult, &SplitResult) -> Option<f64>>;

/// A column of the run tables.
pub(crate) struct Column {
    pub(crate) header: String,
    decimals: usize,
    /// Printed with a sign (differences).
    signed: bool,
    pub(crate) value: CellValue,
}

impl Column {
    fn new(
        header: impl Into<String>,
        decimals: usize,
        value: impl Fn(&RunResult, &SplitResult) -> Option<f64> + 'static,
    ) -> Column {
        Column {
            header: header.into(),
            decimals,
            signed: false,
            value: Box::new(value),
        }
    }

    fn format(&self, v: Option<f64>) -> String {
        match v {
            Some(v) if v.is_finite() && self.signed => format!("{v:+.d$}", d = self.decimals),
            Some(v) if v.is_finite() => format!("{v:.d$}", d = self.decimals),
            _ => "–".into(),
        }
    }
}

pub(crate) fn columns(beams: &[usize], compare: usize) -> Vec<Column> {
    let mut cols = vec![
        Column::new("valid NLL", 4, |r, _| r.valid.as_ref().map(|v| v.nll)),
        Column::new("valid ppl", 2, |r, _| {
            r.valid.as_ref().map(|v| v.perplexity)
        }),
        Column::new("valid acc %", 2, |r, _| {
            r.valid.as_ref().map(|v| 100.0 * v.accuracy)
        }),
        Column::new("test NLL", 4, |_, s| Some(s.test_nll)),
        Column::new("ECE", 4, |_, s| Some(s.ece)),
        Column::new("MCE", 4, |_, s| Some(s.mce)),
        Column::new("adaptive ECE", 4, |_, s| Some(s.adaptive_ece)),
        Column::new("</s> ECE", 4, |_, s| s.eos_ece),
        Column::new("T*", 3, |_, s| Some(s.temperature)),
        Column::new("ECE@T*", 4, |_, s| Some(s.ece_at_temperature)),
    ];
    for &b in beams {
        cols.push(Column::new(format!("BLEU b{b}"), 2, move |_, s| {
            s.at(b).map(|x| x.bleu)
        }));
    }
    if compare != 1 && beams.contains(&1) {
        let mut gain = Column::new(format!("Δ b{compare}−b1"), 2, move |_, s| {
            Some(s.at(compare)?.bleu - s.at(1)?.bleu)
        });
        gain.signed = true;
        cols.push(gain);
    }
    if beams.contains(&compare) {
        cols.push(Column::new(format!("chrF b{compare}"), 2, move |_, s| {
            s.at(compare).map(|x| x.chrf)
        }));
    }
    for &b in beams {
        cols.push(Column::new(format!("len b{b}"), 3, move |_, s| {
            s.at(b).map(|x| x.length_ratio)
        }));
    }
    cols.push(Column::new(
        format!("inference ECE b{compare}"),
        4,
        move |_, s| s.at(compare).map(|x| x.inference_ece),
    ));
    cols.push(Column::new("H(q)/ln(K−1)", 4, |_, s| {
        s.erasure_entropy_ratio
    }));
    cols.push(Column::new("KL(q‖u)", 3, |_, s| {
        s.erasure_kl_from_uniform
    }));
    cols.push(Column::new("top-5 q", 3, |_, s| s.erasure_top5_mass));
    cols.push(Column::new("oracle gap", 4, |_, s| s.oracle_mean_abs_gap));
    cols.push(Column::new("oracle ECE", 4, |_, s| s.oracle_ece));
    cols.push(Column::new("train s", 0, |r, _| Some(r.train_seconds)));
    cols
}

/// Mean and sample standard deviation (0 for one value).
pub(crate) fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// `items` (each with its α) grouped by α in the order of `alphas`, keeping their order within a
/// group; an α without items is left out.
pub(crate) fn group_by_alpha<T>(
    alphas: &[f64],
    items: impl IntoIterator<Item = (f64, T)>,
) -> Vec<(f64, Vec<T>)> {
    let mut groups: Vec<(f64, Vec<T>)> = alphas.iter().map(|&a| (a, Vec::new())).collect();
    for (alpha, item) in items {
        if let Some(group) = groups.iter_mut().find(|g| g.0 == alpha) {
            group.1.push(item);
        }
    }
    groups.retain(|g| !g.1.is_empty());
    groups
}

/// The runs of each α (in the sweep's order) that have results on `split`.
pub(crate) fn by_alpha<'a>(
    alphas: &[f64],
    runs: &'a [RunResult],
    split: &str,
) -> Vec<(f64, Vec<(&'a RunResult, &'a SplitResult)>)> {
    group_by_alpha(
        alphas,
        runs.iter()
            .filter_map(|r| Some((r.alpha, (r, r.split(split)?)))),
    )
}

/// The tables of one split: mean ± std per α (with several seeds), then one row per run. Appends the
/// rows to `csv`.
pub(crate) fn split_tables(
    md: &mut String,
    csv: &mut String,
    sweep: &Sweep,
    runs: &[RunResult],
    split: &str,
    cols: &[&Column],
) -> Result<()> {
    let groups = by_alpha(&sweep.config.sweep.alphas, runs, split);
    if groups.iter().any(|(_, g)| g.len() > 1) {
        write!(md, "| α | seeds |")?;
        for c in cols {
            write!(md, " {} |", c.header)?;
        }
        writeln!(md, "\n|{}", "---|".repeat(cols.len() + 2))?;
        for (alpha, group) in &groups {
            write!(md, "| {alpha} | {} |", group.len())?;
            for c in cols {
                let xs: Vec<f64> = group.iter().filter_map(|(r, s)| (c.value)(r, s)).collect();
                if xs.is_empty() {
                    write!(md, " – |")?;
                } else {
                    let (m, s) = mean_std(&xs);
                    write!(md, " {} ± {s:.d$} |", c.format(Some(m)), d = c.decimals)?;
                }
            }
            writeln!(md)?;
        }
        writeln!(md, "\nMean ± standard deviation over seeds. Per run:\n")?;
    }
    write!(md, "| α | seed |")?;
    for c in cols {
        write!(md, " {} |", c.header)?;
    }
    writeln!(md, " threads |\n|{}", "---|".repeat(cols.len() + 3))?;
    for (_, group) in &groups {
        for (r, s) in group {
            write!(md, "| {} | {} |", r.alpha, r.seed)?;
            write!(csv, "{split},{},{}", r.alpha, r.seed)?;
            for c in cols {
                let v = (c.value)(r, s);
                write!(md, " {} |", c.format(v))?;
                match v {
                    Some(v) if v.is_finite() => write!(csv, ",{v:.d$}", d = c.decimals + 2)?,
                    _ => csv.push(','),
                }
            }
            writeln!(md, " {} |", r.threads)?;
            writeln!(csv, ",{}", r.threads)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::collect::tests::{run, split};

    #[test]
    fn mean_and_sample_standard_deviation() {
        assert_eq!(mean_std(&[2.0]), (2.0, 0.0));
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 6.0]);
        assert_eq!(m, 3.0);
        assert!((s - (14.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn runs_are_grouped_by_alpha_in_the_sweeps_order_and_empty_groups_dropped() {
        let runs = vec![
            run(0.1, 1, vec![split("t", 1.0)]),
            run(0.0, 1, vec![split("t", 2.0)]),
            run(0.1, 2, vec![split("t", 3.0)]),
            run(0.2, 1, vec![split("other", 4.0)]),
        ];
        let groups = by_alpha(&[0.0, 0.1, 0.2], &runs, "t");
        let shape: Vec<(f64, Vec<u64>)> = groups
            .iter()
            .map(|(a, g)| (*a, g.iter().map(|(r, _)| r.seed).collect()))
            .collect();
        assert_eq!(shape, vec![(0.0, vec![1]), (0.1, vec![1, 2])]);
    }

    #[test]
    fn columns_follow_the_beams_and_format_missing_values_as_a_dash() {
        let cols = columns(&[1, 4], 4);
        let headers: Vec<&str> = cols.iter().map(|c| c.header.as_str()).collect();
        for h in [
            "BLEU b1",
            "BLEU b4",
            "Δ b4−b1",
            "chrF b4",
            "len b1",
            "len b4",
            "</s> ECE",
        ] {
            assert!(headers.contains(&h), "{h} missing from {headers:?}");
        }
        let r = run(0.1, 1, vec![split("t", 1.5)]);
        let s = &r.splits[0];
        let cell = |h: &str| {
            let c = cols.iter().find(|c| c.header == h).unwrap();
            c.format((c.value)(&r, s))
        };
        assert_eq!(cell("BLEU b4"), "2.50");
        assert_eq!(cell("Δ b4−b1"), "+1.00");
        assert_eq!(cell("chrF b4"), "3.00");
        assert_eq!(cell("oracle gap"), "–");
        // No Δ column without greedy decoding.
        assert!(
            !columns(&[4, 8], 4)
                .iter()
                .any(|c| c.header.starts_with('Δ'))
        );
    }
}
