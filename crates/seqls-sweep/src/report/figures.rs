//! The figures of a report (PNG and SVG under `figures/`): BLEU against beam size and against α,
//! validation per epoch, reliability diagrams pooled over seeds, and the penultimate-layer picture.

use crate::driver::Sweep;
use crate::error::Result;
use crate::per_run::penultimate;
use crate::report::collect::{EpochResult, RunResult, SplitResult};
use crate::report::tables::{by_alpha, mean_std};
use burn::tensor::Device;
use seqls_data::corpus::encode_for_inference;
use seqls_eval::calibration::{Calibration, pool};
use seqls_plot::{Figure, LineChart, Reliability, ReliabilityGrid, Scatter, ScatterPanel, Series};
use seqls_run::error::At;

/// The figures directory of a report and what has been written into it.
pub(crate) struct FigureDir {
    pub(crate) dir: std::path::PathBuf,
    /// (title, path stem relative to the sweep directory) per figure.
    pub(crate) written: Vec<(String, String)>,
}

impl FigureDir {
    pub(crate) fn save(&mut self, name: &str, title: &str, figure: &impl Figure) -> Result<()> {
        seqls_plot::save(figure, &self.dir.join(name))?;
        self.written
            .push((title.to_string(), format!("figures/{name}")));
        Ok(())
    }
}

/// One line per α through `(x, mean over seeds)` with the standard deviation as error bars.
pub(crate) fn mean_series(
    groups: &[(f64, Vec<(&RunResult, &SplitResult)>)],
    xs: &[f64],
    value: &dyn Fn(&RunResult, &SplitResult, f64) -> Option<f64>,
) -> Vec<Series> {
    groups
        .iter()
        .map(|(alpha, group)| {
            let mut s = Series::new(format!("α = {alpha}"), Vec::new());
            for &x in xs {
                let ys: Vec<f64> = group.iter().filter_map(|(r, sp)| value(r, sp, x)).collect();
                if !ys.is_empty() {
                    let (m, sd) = mean_std(&ys);
                    s.points.push((x, m));
                    s.errors.push(sd);
                }
            }
            s
        })
        .collect()
}

pub(crate) fn chart(title: &str, x: &str, y: &str, series: Vec<Series>, log2_x: bool) -> LineChart {
    LineChart {
        title: title.into(),
        x_label: x.into(),
        y_label: y.into(),
        series,
        log2_x,
    }
}

/// Writes the figures of `runs` into `SWEEP/figures`; returns (title, file stem) per figure.
pub(crate) fn write_figures(
    sweep: &Sweep,
    runs: &[RunResult],
    device: &Device,
) -> Result<Vec<(String, String)>> {
    let mut figures = FigureDir {
        dir: sweep.dir.join("figures"),
        written: Vec::new(),
    };
    std::fs::create_dir_all(&figures.dir).at(figures.dir.display())?;
    let finished_seeds: std::collections::BTreeSet<u64> = runs.iter().map(|r| r.seed).collect();
    let seeds = if finished_seeds.len() > 1 {
        format!(", mean ± std over {} seeds", finished_seeds.len())
    } else {
        String::new()
    };
    beam_figures(&mut figures, sweep, runs, &seeds)?;
    alpha_figures(&mut figures, sweep, runs, &seeds)?;
    let first_seed: Vec<&RunResult> = runs
        .iter()
        .filter(|r| r.seed == sweep.config.sweep.seeds[0])
        .collect();
    epoch_figures(&mut figures, sweep, &first_seed)?;
    reliability_figure(&mut figures, sweep, runs, finished_seeds.len() > 1)?;
    penultimate(&mut figures, sweep, &first_seed, device)?;
    Ok(figures.written)
}

/// BLEU against beam size per test split, one line per α, and the length ratio on the first split.
fn beam_figures(
    figures: &mut FigureDir,
    sweep: &Sweep,
    runs: &[RunResult],
    seeds: &str,
) -> Result<()> {
    let grid = &sweep.config.sweep;
    let beams: Vec<f64> = grid.beams.iter().map(|&b| b as f64).collect();
    let alphas = &grid.alphas;
    for split in &sweep.test_splits {
        let groups = by_alpha(alphas, runs, split);
        let c = chart(
            &format!("{split}: BLEU vs beam size{seeds}"),
            "beam size",
            "BLEU",
            mean_series(&groups, &beams, &|_, s, b| s.at(b as usize).map(|x| x.bleu)),
            true,
        );
        figures.save(
            &format!("bleu-vs-beam-{split}"),
            &format!("{split}: BLEU vs beam size, one line per α{seeds}"),
            &c,
        )?;
    }
    let primary = &sweep.test_splits[0];
    let groups = by_alpha(alphas, runs, primary);
    let c = chart(
        &format!("{primary}: length ratio (hyp/ref) vs beam size"),
        "beam size",
        "length ratio",
        mean_series(&groups, &beams, &|_, s, b| {
            s.at(b as usize).map(|x| x.length_ratio)
        }),
        true,
    );
    figures.save(
        "length-ratio-vs-beam",
        &format!("{primary}: hypothesis/reference length ratio vs beam size (length bias){seeds}"),
        &c,
    )?;
    Ok(())
}

/// ECE and BLEU against α on the first split, mean ± std over seeds.
fn alpha_figures(
    figures: &mut FigureDir,
    sweep: &Sweep,
    runs: &[RunResult],
    seeds: &str,
) -> Result<()> {
    let grid = &sweep.config.sweep;
    let primary = &sweep.test_splits[0];
    let groups = by_alpha(&grid.alphas, runs, primary);
    // Lines over α: one series per measure, mean ± std over seeds.
    let over_alpha = |label: String, f: &dyn Fn(&RunResult, &SplitResult) -> Option<f64>| {
        let mut s = Series::new(label, Vec::new());
        for (alpha, group) in &groups {
            let ys: Vec<f64> = group.iter().filter_map(|(r, sp)| f(r, sp)).collect();
            if !ys.is_empty() {
                let (m, sd) = mean_std(&ys);
                s.points.push((*alpha, m));
                s.errors.push(sd);
            }
        }
        s
    };
    let compare = grid.compare_beam;
    let c = chart(
        &format!("{primary}: calibration vs α"),
        "α",
        "ECE",
        vec![
            over_alpha("ECE (teacher-forced)".into(), &|_, s| Some(s.ece)),
            over_alpha("ECE at T*".into(), &|_, s| Some(s.ece_at_temperature)),
            over_alpha(format!("inference ECE (beam {compare})"), &|_, s| {
                s.at(compare).map(|b| b.inference_ece)
            }),
        ],
        false,
    );
    figures.save("ece-vs-alpha", &format!("{primary}: ECE vs α{seeds}"), &c)?;
    let c = chart(
        &format!("{primary}: BLEU vs α"),
        "α",
        "BLEU",
        grid.beams
            .iter()
            .map(|&k| over_alpha(format!("beam {k}"), &|_, s| s.at(k).map(|b| b.bleu)))
            .collect(),
        false,
    );
    figures.save(
        "bleu-vs-alpha",
        &format!("{primary}: BLEU vs α, one line per beam size{seeds}"),
        &c,
    )?;
    Ok(())
}

/// Validation NLL (and greedy BLEU, where logged) per epoch of the first seed's runs.
fn epoch_figures(figures: &mut FigureDir, sweep: &Sweep, first_seed: &[&RunResult]) -> Result<()> {
    let grid = &sweep.config.sweep;
    let per_epoch = |f: fn(&EpochResult) -> Option<f64>| -> Vec<Series> {
        first_seed
            .iter()
            .map(|r| {
                Series::new(
                    format!("α = {}", r.alpha),
                    r.epochs
                        .iter()
                        .filter_map(|e| Some((e.epoch as f64, f(e)?)))
                        .collect(),
                )
            })
            .collect()
    };
    let c = chart(
        "Validation NLL per epoch",
        "epoch",
        "NLL (nats/token)",
        per_epoch(|e| Some(e.nll)),
        false,
    );
    figures.save(
        "valid-nll-per-epoch",
        &format!(
            "Validation NLL per epoch (learning speed; seed {})",
            grid.seeds[0]
        ),
        &c,
    )?;
    if first_seed
        .iter()
        .any(|r| r.epochs.iter().any(|e| e.greedy_bleu.is_some()))
    {
        let c = chart(
            "Validation BLEU (greedy) per epoch",
            "epoch",
            "BLEU",
            per_epoch(|e| e.greedy_bleu),
            false,
        );
        figures.save(
            "valid-bleu-per-epoch",
            &format!("Greedy validation BLEU per epoch (seed {})", grid.seeds[0]),
            &c,
        )?;
    }
    Ok(())
}

/// Teacher-forced reliability diagrams per α on the first split (tokens of all seeds pooled), and
/// α = 0 after temperature scaling.
fn reliability_figure(
    figures: &mut FigureDir,
    sweep: &Sweep,
    runs: &[RunResult],
    several_seeds: bool,
) -> Result<()> {
    let primary = &sweep.test_splits[0];
    let groups = by_alpha(&sweep.config.sweep.alphas, runs, primary);
    // Reliability diagrams pooled over seeds.
    let pooled: Vec<(String, Calibration)> = groups
        .iter()
        .filter_map(|(alpha, group)| {
            let parts: Vec<&Calibration> = group
                .iter()
                .filter_map(|(_, s)| s.teacher_forced.as_ref())
                .collect();
            Some((format!("α = {alpha}"), pool(&parts)?))
        })
        .collect();
    let mut panels: Vec<(String, Calibration)> = pooled;
    if let Some((_, group)) = groups.iter().find(|(a, _)| *a == 0.0) {
        let parts: Vec<&Calibration> = group
            .iter()
            .filter_map(|(_, s)| s.teacher_forced_at_temperature.as_ref())
            .collect();
        let (t, _) = mean_std(&group.iter().map(|(_, s)| s.temperature).collect::<Vec<_>>());
        if let Some(cal) = pool(&parts) {
            panels.push((format!("α = 0 at T* (mean {t:.3})"), cal));
        }
    }
    let grid_figure = ReliabilityGrid {
        columns: panels.len().clamp(1, 4),
        panels: panels
            .iter()
            .map(|(title, calibration)| Reliability {
                title: title.clone(),
                calibration,
            })
            .collect(),
    };
    let pooled_note = if several_seeds {
        ", tokens of all seeds pooled"
    } else {
        ""
    };
    figures.save(
        "reliability-grid",
        &format!(
            "{primary}: teacher-forced reliability diagrams, one per α, and α = 0 after temperature scaling{pooled_note}"
        ),
        &grid_figure,
    )?;
    Ok(())
}

/// The penultimate-layer picture, from the models or, where they are not (a committed report), from
/// its cached points.
fn penultimate(
    figures: &mut FigureDir,
    sweep: &Sweep,
    first_seed: &[&RunResult],
    device: &Device,
) -> Result<()> {
    // The projected points are kept in figures/penultimate.json, so that the figure can be redrawn
    // where the models are not (a committed report).
    let cache = figures.dir.join("penultimate.json");
    let scatter = match penultimate_figure(sweep, first_seed, device) {
        Ok(Some(figure)) => {
            seqls_data::write::write_atomic(&cache, serde_json::to_string(&figure)?.as_bytes())?;
            Some(figure)
        }
        Ok(None) => None,
        Err(e) if cache.exists() => {
            eprintln!(
                "notice: penultimate-layer picture redrawn from {}: {e:#}",
                cache.display()
            );
            let text = std::fs::read_to_string(&cache).at(cache.display())?;
            Some(serde_json::from_str(&text).at(cache.display())?)
        }
        Err(e) => return Err(e).at("penultimate-layer picture").map_err(Into::into),
    };
    if let Some(figure) = scatter {
        figures.save("penultimate", "Penultimate-layer picture", &figure)?;
    }
    Ok(())
}

/// The penultimate-layer picture of the smallest and the largest α; `None` with a single α.
fn penultimate_figure(
    sweep: &Sweep,
    runs: &[&RunResult],
    device: &Device,
) -> Result<Option<Scatter>> {
    let smallest = runs.iter().min_by(|a, b| a.alpha.total_cmp(&b.alpha));
    let largest = runs.iter().max_by(|a, b| a.alpha.total_cmp(&b.alpha));
    let (Some(lo), Some(hi)) = (smallest, largest) else {
        return Ok(None);
    };
    if lo.alpha == hi.alpha {
        return Ok(None);
    }
    let mut panels = Vec::new();
    let mut classes = Vec::new();
    for r in [lo, hi] {
        let run = sweep.run_dir(r.alpha, r.seed);
        let (run_config, tokenizer, model) = run.load_model(device)?;
        let text = run_config.data.load_split(&sweep.test_splits[0])?;
        let encoded = encode_for_inference(&tokenizer, &text.pairs, run_config.model.max_len)?;
        if classes.is_empty() {
            let tokens = penultimate::frequent_word_tokens(&encoded.examples, &tokenizer);
            classes = tokens
                .iter()
                .filter_map(|&t| tokenizer.id_to_token(t))
                .collect::<Vec<_>>();
        }
        let ids: Vec<u32> = classes
            .iter()
            .filter_map(|s| tokenizer.token_to_id(s))
            .collect();
        let Ok(ids) = <[u32; 3]>::try_from(ids) else {
            return Ok(None);
        };
        let projection = penultimate::project(&model, &encoded.examples, ids, 300, device);
        panels.push(ScatterPanel {
            title: format!("α = {}", r.alpha),
            points: projection.points,
            anchors: projection.templates,
        });
    }
    Ok(Some(Scatter {
        classes: classes
            .iter()
            .map(|c| format!("\"{}\"", c.trim_start_matches('▁')))
            .collect(),
        panels,
        x_label: "e1".into(),
        y_label: "e2".into(),
    }))
}
