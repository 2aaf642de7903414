//! The α × beam report of a sweep directory: `report.md`, `report.json`, `table.csv` and the figures
//! under `figures/` (PNG and SVG).
//!
//! Layout: `SWEEP/sweep.toml` is the effective config; `SWEEP/a<α>-s<seed>/` is a run directory
//! (`seqls train`), holding `eval-test-beam<K>.json` per beam size (`seqls eval`). Everything here is
//! read from those files, except the penultimate-layer picture, which loads the α = 0 model and the
//! model of the largest α.

use crate::penultimate;
use anyhow::Context;
use burn::tensor::Device;
use seqls_data::corpus::encode_pairs;
use seqls_eval::calibration::Calibration;
use seqls_eval::{BleuOptions, paired_bootstrap};
use seqls_plot::{Figure, LineChart, Reliability, ReliabilityGrid, Scatter, ScatterPanel, Series};
use seqls_train::{ExperimentConfig, RunDir};
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// Run directory name of `(α, seed)` inside a sweep.
pub fn run_name(alpha: f64, seed: u64) -> String {
    format!("a{alpha}-s{seed}")
}

/// One run's results at one beam size.
#[derive(Debug, Clone, Serialize)]
pub struct BeamResult {
    pub beam: usize,
    pub bleu: f64,
    pub chrf: f64,
    pub length_ratio: f64,
    pub inference_ece: f64,
    pub sentences_per_sec: f64,
    pub hypotheses_file: String,
}

/// Validation at the end of one epoch.
#[derive(Debug, Clone, Serialize)]
pub struct EpochResult {
    pub epoch: usize,
    pub nll: f64,
    pub greedy_bleu: Option<f64>,
    pub train_seconds: f64,
}

/// One row of the main table: one (α, seed).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub alpha: f64,
    pub seed: u64,
    pub valid_nll: Option<f64>,
    pub valid_perplexity: Option<f64>,
    pub valid_accuracy: Option<f64>,
    pub train_seconds: f64,
    pub threads: usize,
    pub test_nll: f64,
    pub test_accuracy: f64,
    pub ece: f64,
    pub mce: f64,
    pub adaptive_ece: f64,
    pub temperature: f64,
    pub ece_at_temperature: f64,
    pub oracle_mean_abs_gap: Option<f64>,
    pub oracle_ece: Option<f64>,
    pub beams: Vec<BeamResult>,
    pub epochs: Vec<EpochResult>,
    #[serde(skip)]
    teacher_forced: Option<Calibration>,
    #[serde(skip)]
    teacher_forced_at_temperature: Option<Calibration>,
}

impl Row {
    fn at(&self, beam: usize) -> Option<&BeamResult> {
        self.beams.iter().find(|b| b.beam == beam)
    }
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    serde_json::from_str(&text).with_context(|| path.display().to_string())
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Reads one finished run; `None` when it has no metrics or no evaluation yet.
fn read_row(run: &RunDir, alpha: f64, seed: u64, beams: &[usize]) -> anyhow::Result<Option<Row>> {
    if !run.metrics().exists() {
        return Ok(None);
    }
    let metrics = read_json(&run.metrics())?;
    let mut evals = Vec::new();
    for &beam in beams {
        let p = run.root.join(format!("eval-test-beam{beam}.json"));
        if p.exists() {
            evals.push((beam, read_json(&p)?));
        }
    }
    let Some((_, first)) = evals.first() else {
        return Ok(None);
    };
    let epochs = std::fs::read_to_string(run.log())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "valid" && !v["greedy_bleu"].is_null())
        .map(|v| EpochResult {
            epoch: v["epoch"].as_u64().unwrap_or(0) as usize,
            nll: num(&v["metrics"]["nll"]),
            greedy_bleu: v["greedy_bleu"].as_f64(),
            train_seconds: num(&v["train_seconds"]),
        })
        .collect();
    let tf = &first["teacher_forced"];
    let calibration = |v: &Value| serde_json::from_value::<Calibration>(v.clone()).ok();
    Ok(Some(Row {
        alpha,
        seed,
        valid_nll: metrics["final_valid"]["nll"].as_f64(),
        valid_perplexity: metrics["final_valid"]["perplexity"].as_f64(),
        valid_accuracy: metrics["final_valid"]["accuracy"].as_f64(),
        train_seconds: num(&metrics["train_seconds"]),
        threads: metrics["threads"].as_u64().unwrap_or(0) as usize,
        test_nll: num(&tf["nll"]),
        test_accuracy: num(&tf["with_eos"]["accuracy"]),
        ece: num(&tf["with_eos"]["ece"]),
        mce: num(&tf["with_eos"]["mce"]),
        adaptive_ece: num(&tf["with_eos"]["adaptive_ece"]),
        temperature: num(&first["fitted_temperature"]),
        ece_at_temperature: num(&first["teacher_forced_at_fitted_temperature"]["with_eos"]["ece"]),
        oracle_mean_abs_gap: first["oracle"]["mean_abs_gap"].as_f64(),
        oracle_ece: first["oracle"]["ece"].as_f64(),
        beams: evals
            .iter()
            .map(|(beam, e)| BeamResult {
                beam: *beam,
                bleu: num(&e["bleu"]["score"]),
                chrf: num(&e["chrf"]),
                length_ratio: num(&e["length_ratio"]),
                inference_ece: num(&e["inference"]["ece"]),
                sentences_per_sec: num(&e["sentences_per_sec"]),
                hypotheses_file: e["hypotheses_file"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            })
            .collect(),
        epochs,
        teacher_forced: calibration(&tf["with_eos"]),
        teacher_forced_at_temperature: calibration(
            &first["teacher_forced_at_fitted_temperature"]["with_eos"],
        ),
    }))
}

/// A column of the main table: header, value, decimals.
type Column = (String, Box<dyn Fn(&Row) -> Option<f64>>, usize);

fn columns(beams: &[usize]) -> Vec<Column> {
    let mut cols: Vec<Column> = vec![
        ("valid NLL".into(), Box::new(|r: &Row| r.valid_nll), 4),
        (
            "valid ppl".into(),
            Box::new(|r: &Row| r.valid_perplexity),
            2,
        ),
        (
            "valid acc %".into(),
            Box::new(|r: &Row| r.valid_accuracy.map(|a| 100.0 * a)),
            2,
        ),
        ("test NLL".into(), Box::new(|r: &Row| Some(r.test_nll)), 4),
        ("ECE".into(), Box::new(|r: &Row| Some(r.ece)), 4),
        ("MCE".into(), Box::new(|r: &Row| Some(r.mce)), 4),
        (
            "adaptive ECE".into(),
            Box::new(|r: &Row| Some(r.adaptive_ece)),
            4,
        ),
        ("T*".into(), Box::new(|r: &Row| Some(r.temperature)), 3),
        (
            "ECE@T*".into(),
            Box::new(|r: &Row| Some(r.ece_at_temperature)),
            4,
        ),
    ];
    for &b in beams {
        cols.push((
            format!("BLEU b{b}"),
            Box::new(move |r: &Row| r.at(b).map(|x| x.bleu)),
            2,
        ));
    }
    cols.push((
        "Δ b4−b1".into(),
        Box::new(|r: &Row| Some(r.at(4)?.bleu - r.at(1)?.bleu)),
        2,
    ));
    for &b in beams {
        cols.push((
            format!("len b{b}"),
            Box::new(move |r: &Row| r.at(b).map(|x| x.length_ratio)),
            3,
        ));
    }
    cols.push((
        "inference ECE b4".into(),
        Box::new(|r: &Row| r.at(4).map(|x| x.inference_ece)),
        4,
    ));
    cols.push((
        "oracle gap".into(),
        Box::new(|r: &Row| r.oracle_mean_abs_gap),
        4,
    ));
    cols.push(("oracle ECE".into(), Box::new(|r: &Row| r.oracle_ece), 4));
    cols.push((
        "train s".into(),
        Box::new(|r: &Row| Some(r.train_seconds)),
        0,
    ));
    cols
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// The figures directory of a report and what has been written into it.
struct FigureDir {
    dir: std::path::PathBuf,
    /// (title, path stem relative to the sweep directory) per figure.
    written: Vec<(String, String)>,
}

impl FigureDir {
    fn save(&mut self, name: &str, title: &str, figure: &impl Figure) -> anyhow::Result<()> {
        seqls_plot::save(figure, &self.dir.join(name)).map_err(anyhow::Error::msg)?;
        self.written
            .push((title.to_string(), format!("figures/{name}")));
        Ok(())
    }
}

/// Writes the figures of `rows` into `dir/figures`; returns (title, file stem) per figure.
fn write_figures(
    dir: &Path,
    config: &ExperimentConfig,
    rows: &[Row],
    device: &Device,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut figures = FigureDir {
        dir: dir.join("figures"),
        written: Vec::new(),
    };
    std::fs::create_dir_all(&figures.dir).with_context(|| figures.dir.display().to_string())?;
    let seed = config.sweep.seeds.first().copied().unwrap_or(1);
    let first_seed: Vec<&Row> = rows.iter().filter(|r| r.seed == seed).collect();
    let label = |r: &Row| format!("α = {}", r.alpha);
    let per_beam = |f: fn(&BeamResult) -> f64| -> Vec<Series> {
        first_seed
            .iter()
            .map(|r| Series {
                label: label(r),
                points: r.beams.iter().map(|b| (b.beam as f64, f(b))).collect(),
            })
            .collect()
    };
    let chart = |title: &str, x: &str, y: &str, series: Vec<Series>, log2_x: bool| LineChart {
        title: title.into(),
        x_label: x.into(),
        y_label: y.into(),
        series,
        log2_x,
    };
    let c = chart(
        "Test BLEU vs beam size",
        "beam size",
        "BLEU",
        per_beam(|b| b.bleu),
        true,
    );
    figures.save("bleu-vs-beam", "BLEU vs beam size, one line per α", &c)?;
    let c = chart(
        "Length ratio (hyp/ref) vs beam size",
        "beam size",
        "length ratio",
        per_beam(|b| b.length_ratio),
        true,
    );
    figures.save(
        "length-ratio-vs-beam",
        "Hypothesis/reference length ratio vs beam size (length bias)",
        &c,
    )?;
    let vs_alpha = |f: &dyn Fn(&Row) -> Option<f64>| -> Vec<(f64, f64)> {
        first_seed
            .iter()
            .filter_map(|r| Some((r.alpha, f(r)?)))
            .collect()
    };
    let c = chart(
        "Calibration vs α (test, teacher-forced)",
        "α",
        "ECE",
        vec![
            Series {
                label: "ECE".into(),
                points: vs_alpha(&|r| Some(r.ece)),
            },
            Series {
                label: "ECE at T*".into(),
                points: vs_alpha(&|r| Some(r.ece_at_temperature)),
            },
            Series {
                label: "inference ECE (beam 4)".into(),
                points: vs_alpha(&|r| r.at(4).map(|b| b.inference_ece)),
            },
        ],
        false,
    );
    figures.save("ece-vs-alpha", "ECE vs α", &c)?;
    let c = chart(
        "Test BLEU vs α",
        "α",
        "BLEU",
        config
            .sweep
            .beams
            .iter()
            .map(|&k| Series {
                label: format!("beam {k}"),
                points: vs_alpha(&|r| r.at(k).map(|b| b.bleu)),
            })
            .collect(),
        false,
    );
    figures.save("bleu-vs-alpha", "BLEU vs α, one line per beam size", &c)?;
    let per_epoch = |f: fn(&EpochResult) -> Option<f64>| -> Vec<Series> {
        first_seed
            .iter()
            .map(|r| Series {
                label: label(r),
                points: r
                    .epochs
                    .iter()
                    .filter_map(|e| Some((e.epoch as f64, f(e)?)))
                    .collect(),
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
        "Validation NLL per epoch (learning speed)",
        &c,
    )?;
    let c = chart(
        "Validation BLEU (greedy) per epoch",
        "epoch",
        "BLEU",
        per_epoch(|e| e.greedy_bleu),
        false,
    );
    figures.save(
        "valid-bleu-per-epoch",
        "Greedy validation BLEU per epoch",
        &c,
    )?;

    let mut panels: Vec<Reliability> = first_seed
        .iter()
        .filter_map(|r| {
            Some(Reliability {
                title: label(r),
                calibration: r.teacher_forced.as_ref()?,
            })
        })
        .collect();
    if let Some(r0) = first_seed.iter().find(|r| r.alpha == 0.0)
        && let Some(cal) = &r0.teacher_forced_at_temperature
    {
        panels.push(Reliability {
            title: format!("α = 0 at T* = {:.3}", r0.temperature),
            calibration: cal,
        });
    }
    let grid = ReliabilityGrid {
        columns: panels.len().min(4),
        panels,
    };
    figures.save(
        "reliability-grid",
        "Teacher-forced reliability diagrams, one per α, and α = 0 after temperature scaling",
        &grid,
    )?;

    // Penultimate layer: α = 0 (or the smallest α) and the largest α.
    let smallest = first_seed.iter().min_by(|a, b| a.alpha.total_cmp(&b.alpha));
    let largest = first_seed.iter().max_by(|a, b| a.alpha.total_cmp(&b.alpha));
    if let (Some(lo), Some(hi)) = (smallest, largest)
        && lo.alpha != hi.alpha
    {
        let mut panels = Vec::new();
        let mut classes = Vec::new();
        for r in [lo, hi] {
            let run = RunDir::new(dir.join(run_name(r.alpha, r.seed)));
            let (run_config, tokenizer, model) =
                run.load_model(device).map_err(anyhow::Error::msg)?;
            let text = run_config.data.load_split("test")?;
            let encoded = encode_pairs(&tokenizer, &text.pairs, None)?;
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
                break;
            };
            let projection = penultimate::project(&model, &encoded.examples, ids, 300, device);
            panels.push(ScatterPanel {
                title: format!("α = {}", r.alpha),
                points: projection.points,
                anchors: projection.templates,
            });
        }
        if panels.len() == 2 {
            let figure = Scatter {
                classes: classes
                    .iter()
                    .map(|c| format!("\"{}\"", c.trim_start_matches('▁')))
                    .collect(),
                panels,
                x_label: "e1".into(),
                y_label: "e2".into(),
            };
            figures.save("penultimate", "Penultimate-layer picture", &figure)?;
        }
    }
    Ok(figures.written)
}

/// Assembles the report of the sweep directory `dir` from its finished jobs; returns the markdown.
pub fn write_report(dir: &Path, device: &Device) -> anyhow::Result<String> {
    let config = ExperimentConfig::load(&dir.join("sweep.toml")).map_err(anyhow::Error::msg)?;
    let beams = &config.sweep.beams;
    let mut rows = Vec::new();
    for &seed in &config.sweep.seeds {
        for &alpha in &config.sweep.alphas {
            let run = RunDir::new(dir.join(run_name(alpha, seed)));
            if let Some(row) = read_row(&run, alpha, seed, beams)? {
                rows.push(row);
            }
        }
    }
    if rows.is_empty() {
        anyhow::bail!("{}: no finished runs with evaluations yet", dir.display());
    }
    let cols = columns(beams);
    let f = |x: Option<f64>, d: usize| match x {
        Some(v) if v.is_finite() => format!("{v:.d$}"),
        _ => "–".into(),
    };
    // Drop columns that no row has (oracle columns outside the synthetic corpus).
    let cols: Vec<&Column> = cols
        .iter()
        .filter(|c| rows.iter().any(|r| (c.1)(r).is_some()))
        .collect();

    let mut md = String::new();
    let mut csv = String::from("alpha,seed");
    writeln!(md, "# seqls sweep: {} (test split)\n", config.name)?;
    write!(md, "| α | seed |")?;
    for c in &cols {
        write!(md, " {} |", c.0)?;
        write!(csv, ",{}", c.0.replace(' ', "_"))?;
    }
    writeln!(md, " threads |\n|{}", "---|".repeat(cols.len() + 3))?;
    csv.push_str(",threads\n");
    for r in &rows {
        write!(md, "| {} | {} |", r.alpha, r.seed)?;
        write!(csv, "{},{}", r.alpha, r.seed)?;
        for c in &cols {
            let v = (c.1)(r);
            if c.0 == "Δ b4−b1" {
                write!(
                    md,
                    " {} |",
                    v.map(|g| format!("{g:+.2}")).unwrap_or("–".into())
                )?;
            } else {
                write!(md, " {} |", f(v, c.2))?;
            }
            write!(csv, ",{}", f(v, c.2 + 2))?;
        }
        writeln!(md, " {} |", r.threads)?;
        writeln!(csv, ",{}", r.threads)?;
    }
    if config.sweep.seeds.len() > 1 {
        writeln!(md, "\n### Mean ± std over seeds\n")?;
        write!(md, "| α | seeds |")?;
        for c in &cols {
            write!(md, " {} |", c.0)?;
        }
        writeln!(md, "\n|{}", "---|".repeat(cols.len() + 2))?;
        for &alpha in &config.sweep.alphas {
            let group: Vec<&Row> = rows.iter().filter(|r| r.alpha == alpha).collect();
            if group.is_empty() {
                continue;
            }
            write!(md, "| {alpha} | {} |", group.len())?;
            for c in &cols {
                let xs: Vec<f64> = group.iter().filter_map(|r| (c.1)(r)).collect();
                if xs.is_empty() {
                    write!(md, " – |")?;
                } else {
                    let (m, s) = mean_std(&xs);
                    write!(md, " {m:.d$} ± {s:.d$} |", d = c.2)?;
                }
            }
            writeln!(md)?;
        }
    }
    writeln!(
        md,
        "\nBLEU: sacreBLEU on detokenised output, `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`. \
         NLL per reference token (`</s>` included), nats. ECE/MCE/adaptive ECE: teacher-forced top-class \
         confidence on the test references, 15 bins, `</s>` included. T*: the temperature minimising \
         validation NLL; ECE@T*: test ECE at T*. len bK: hypothesis/reference length ratio (13a tokens) at \
         beam K. Inference ECE: confidence of each token the beam-4 search produced vs whether an \
         edit-distance alignment to the reference matches it (Wang et al. 2020). Oracle (synthetic corpus \
         only): oracle gap = mean |p − q| between the model's and the generator's probability of each reference word, \
         and ECE against q. Search: {}.\n",
        serde_json::to_string(&config.decode)?
    )?;

    writeln!(md, "## Training time and validation per epoch\n")?;
    writeln!(
        md,
        "| α | seed | threads | train s | greedy valid BLEU per epoch | valid NLL per epoch |\n|---|---|---|---|---|---|"
    )?;
    for r in &rows {
        let join = |xs: Vec<String>| xs.join(", ");
        writeln!(
            md,
            "| {} | {} | {} | {:.0} | {} | {} |",
            r.alpha,
            r.seed,
            r.threads,
            r.train_seconds,
            join(r.epochs.iter().map(|e| f(e.greedy_bleu, 2)).collect()),
            join(r.epochs.iter().map(|e| format!("{:.3}", e.nll)).collect()),
        )?;
    }

    let with_4: Vec<&Row> = rows.iter().filter(|r| r.at(4).is_some()).collect();
    if let Some(base) = with_4.iter().find(|r| r.alpha == 0.0).or(with_4.first())
        && with_4.len() > 1
    {
        let text = config.data.load_split("test")?;
        let refs = vec![text.pairs.iter().map(|p| p.tgt.clone()).collect::<Vec<_>>()];
        let hyps = |r: &Row| -> anyhow::Result<Vec<String>> {
            // Cannot fail: `with_4` holds only rows that have a beam-4 evaluation.
            let file = &r.at(4).expect("beam 4").hypotheses_file;
            Ok(seqls_data::read::read_lines(
                &dir.join(run_name(r.alpha, r.seed)).join(file),
            )?)
        };
        let base_hyps = hyps(base)?;
        writeln!(
            md,
            "\n## Beam 4: each α against α = {} (seed {}), paired bootstrap (1000 resamples)\n",
            base.alpha, base.seed
        )?;
        writeln!(
            md,
            "| α | seed | BLEU | Δ | 95% CI of Δ | p |\n|---|---|---|---|---|---|"
        )?;
        for r in &with_4 {
            if std::ptr::eq(*r, *base) {
                continue;
            }
            let bs = paired_bootstrap(
                &base_hyps,
                &hyps(r)?,
                &refs,
                &BleuOptions::default(),
                1000,
                12345,
            )
            .map_err(anyhow::Error::msg)?;
            writeln!(
                md,
                "| {} | {} | {:.2} | {:+.2} | [{:+.2}, {:+.2}] | {:.4} |",
                r.alpha,
                r.seed,
                bs.system,
                bs.system - bs.baseline,
                bs.delta_ci.0,
                bs.delta_ci.1,
                bs.p_value
            )?;
        }
    }

    let figures = write_figures(dir, &config, &rows, device)?;
    writeln!(md, "\n## Figures\n")?;
    for (title, stem) in &figures {
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
    writeln!(
        md,
        "## Reproduce\n\n```\nseqls sweep --config {d}/sweep.toml --out {d}    # finished jobs are skipped\nseqls report {d}                                  # tables and figures from finished jobs\nseqls sweep --config {d}/sweep.toml --out {d} --plan   # one command per job\n```",
        d = dir.display()
    )?;
    seqls_data::read::write_atomic(&dir.join("report.md"), md.as_bytes())?;
    seqls_data::read::write_atomic(&dir.join("table.csv"), csv.as_bytes())?;
    seqls_data::read::write_atomic(
        &dir.join("report.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "config": config.name,
            "rows": rows,
            "figures": figures,
        }))?
        .as_bytes(),
    )?;
    Ok(md)
}
