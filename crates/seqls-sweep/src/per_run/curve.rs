//! Time to BLEU: the test BLEU of the weights a run kept (`train.keep_last`) against the wall-clock
//! time at which training wrote them, read from the run's own `log.jsonl`; plus the averaged weights.

use crate::error::{Result, SweepError};
use crate::per_run::evaluate::decode_split;
use seqls_run::error::At;

use seqls_decode::SearchConfig;
use seqls_plot::{LineChart, Series};
use seqls_run::RunDir;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One point of the curve.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CurvePoint {
    /// `update-<N>.bpk`, or `model-average.bpk`.
    pub weights: String,
    pub update: usize,
    pub epoch: usize,
    /// Wall-clock minutes of the run when the weights were written (data loading, updates and
    /// validation included; summed over resumes).
    pub wall_minutes: f64,
    /// sacreBLEU (cased, 13a) of the split decoded with the search below.
    pub bleu: f64,
    /// Greedy BLEU on the validation split logged by training at that update, when it was computed.
    pub valid_greedy_bleu: Option<f64>,
}

/// The curve of a run on one split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Curve {
    pub split: String,
    pub beam: usize,
    pub points: Vec<CurvePoint>,
}

/// A validation line of `log.jsonl`.
#[derive(Debug, Deserialize)]
struct ValidLine {
    kind: String,
    step: usize,
    epoch: usize,
    greedy_bleu: Option<f64>,
    #[serde(default)]
    wall_seconds: Option<f64>,
}

fn valid_lines(run: &RunDir) -> Result<Vec<ValidLine>> {
    let text = std::fs::read_to_string(run.log()).at(run.log().display())?;
    let mut lines = vec![];
    for (i, line) in text.lines().enumerate() {
        let parsed: ValidLine = serde_json::from_str(line).at(format!(
            "{}:{}: not a log line",
            run.log().display(),
            i + 1
        ))?;
        if parsed.kind == "valid" {
            lines.push(parsed);
        }
    }
    Ok(lines)
}

/// Decodes `split` with every kept weight file of `run` (and the average, if any) and pairs each BLEU
/// with the wall-clock time of the update that wrote the weights.
pub fn time_to_bleu(
    run: &RunDir,
    split: &str,
    search: &SearchConfig,
    device: &burn::tensor::Device,
    threads: usize,
) -> Result<Curve> {
    let log = valid_lines(run)?;
    let mut weights: Vec<(usize, std::path::PathBuf)> = run.kept();
    if weights.is_empty() {
        return Err(SweepError::NoKeptWeights(run.root.clone()));
    }
    let last_update = weights.last().map_or(0, |w| w.0);
    if run.average_model().exists() {
        weights.push((last_update, run.average_model()));
    }
    let config = seqls_run::ExperimentConfig::load(&run.config())?;
    let tokenizer = seqls_data::SubwordTokenizer::load(&run.tokenizer())?;
    let text = config.data.load_split(split)?;
    let mut points = vec![];
    for (update, path) in weights {
        let Some(line) = log.iter().rev().find(|l| l.step == update) else {
            return Err(SweepError::NoValidationAt {
                weights: path.clone(),
                update,
                log: run.log(),
            });
        };
        let Some(wall) = line.wall_seconds else {
            return Err(SweepError::NoWallClock(run.log()));
        };
        let (_, _, model) = run.load_model_with(device, Some(&path))?;
        let bleu = decode_split(&model, &tokenizer, &text, search, device, threads)?.bleu;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        eprintln!(
            "{name}: update {update}, {:.1} min, BLEU {:.2}",
            wall / 60.0,
            bleu.score
        );
        points.push(CurvePoint {
            weights: name,
            update,
            epoch: line.epoch,
            wall_minutes: wall / 60.0,
            bleu: bleu.score,
            valid_greedy_bleu: line.greedy_bleu,
        });
    }
    Ok(Curve {
        split: split.to_string(),
        beam: search.beam_size,
        points,
    })
}

impl Curve {
    /// A Markdown table, one row per point.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "| weights | update | epoch | wall-clock min | {} BLEU (beam {}) | valid greedy BLEU |\n|---|---|---|---|---|---|\n",
            self.split, self.beam
        );
        for p in &self.points {
            out.push_str(&format!(
                "| {} | {} | {} | {:.1} | {:.2} | {} |\n",
                p.weights,
                p.update,
                p.epoch,
                p.wall_minutes,
                p.bleu,
                p.valid_greedy_bleu
                    .map_or("–".into(), |b| format!("{b:.2}"))
            ));
        }
        out
    }

    /// Writes `<stem>.json`, `<stem>.md` and the figure `<stem>.png/.svg`.
    pub fn write(&self, stem: &Path) -> Result<()> {
        let with = |ext: &str| stem.with_extension(ext);
        seqls_data::write::write_atomic(
            &with("json"),
            serde_json::to_string_pretty(self)?.as_bytes(),
        )?;
        seqls_data::write::write_atomic(&with("md"), self.markdown().as_bytes())?;
        let (epochs, average): (Vec<&CurvePoint>, Vec<&CurvePoint>) = self
            .points
            .iter()
            .partition(|p| p.weights.starts_with("update-"));
        let mut series = vec![Series::new(
            "kept weights",
            epochs.iter().map(|p| (p.wall_minutes, p.bleu)).collect(),
        )];
        if !average.is_empty() {
            series.push(Series::new(
                "averaged weights (model-average.bpk)",
                average.iter().map(|p| (p.wall_minutes, p.bleu)).collect(),
            ));
        }
        let chart = LineChart {
            title: format!(
                "{} BLEU (beam {}) vs wall-clock training time",
                self.split, self.beam
            ),
            x_label: "wall-clock minutes of training".into(),
            y_label: "BLEU".into(),
            series,
            log2_x: false,
        };
        seqls_plot::save(&chart, stem)?;
        Ok(())
    }
}
