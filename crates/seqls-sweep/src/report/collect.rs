//! Reading a sweep directory: every finished run's training summary, log and evaluations, typed (a
//! missing or malformed field is an error naming the file).

use crate::driver::Sweep;
use crate::error::Result;
use crate::per_run::evaluate::EvalReport;
use seqls_eval::calibration::Calibration;
use seqls_run::{LogLine, RunDir, TrainSummary, ValidMetrics, read_log};
use serde::Serialize;

/// The split name of the rows averaged over the test splits.
pub(crate) const MEAN_OVER_SPLITS: &str = "mean over test sets";

/// One run's results on one split at one beam size.
#[derive(Debug, Clone, Serialize)]
pub struct BeamResult {
    pub beam: usize,
    pub bleu: f64,
    pub chrf: f64,
    pub length_ratio: f64,
    pub inference_ece: f64,
    pub sentences_per_sec: f64,
    /// Wall-clock seconds of the decoding: sentences / sentences per second.
    pub decode_seconds: f64,
    pub hypotheses_file: String,
}

/// One run's results on one split.
#[derive(Debug, Clone, Serialize)]
pub struct SplitResult {
    pub split: String,
    pub test_nll: f64,
    pub test_accuracy: f64,
    pub ece: f64,
    pub mce: f64,
    pub adaptive_ece: f64,
    /// Teacher-forced ECE of `p(</s>)` at every position against whether the reference ends there;
    /// `None` for evaluations written before it was measured.
    pub eos_ece: Option<f64>,
    pub temperature: f64,
    pub ece_at_temperature: f64,
    pub oracle_mean_abs_gap: Option<f64>,
    pub oracle_ece: Option<f64>,
    /// Validation split: the distribution over the non-reference tokens ([`seqls_eval::erasure`]).
    pub erasure_entropy_ratio: Option<f64>,
    pub erasure_kl_from_uniform: Option<f64>,
    pub erasure_top5_mass: Option<f64>,
    pub beams: Vec<BeamResult>,
    #[serde(skip)]
    pub(crate) teacher_forced: Option<Calibration>,
    #[serde(skip)]
    pub(crate) teacher_forced_at_temperature: Option<Calibration>,
}

impl SplitResult {
    pub(crate) fn at(&self, beam: usize) -> Option<&BeamResult> {
        self.beams.iter().find(|b| b.beam == beam)
    }
}

/// Validation at the end of one epoch.
#[derive(Debug, Clone, Serialize)]
pub struct EpochResult {
    pub epoch: usize,
    pub nll: f64,
    pub greedy_bleu: Option<f64>,
    pub train_seconds: f64,
}

/// One finished run: one (α, seed).
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub alpha: f64,
    pub seed: u64,
    pub valid: Option<ValidMetrics>,
    pub train_seconds: f64,
    pub threads: usize,
    pub epochs: Vec<EpochResult>,
    /// One entry per test split with at least one evaluation, in the sweep's order; with several,
    /// followed by their mean ([`MEAN_OVER_SPLITS`]) when every split has been evaluated.
    pub splits: Vec<SplitResult>,
}

impl RunResult {
    pub(crate) fn split(&self, name: &str) -> Option<&SplitResult> {
        self.splits.iter().find(|s| s.split == name)
    }
}

fn read_split(run: &RunDir, split: &str, beams: &[usize]) -> Result<Option<SplitResult>> {
    let mut evals = Vec::new();
    for &beam in beams {
        let p = run.eval_file(split, beam);
        if p.exists() {
            evals.push(EvalReport::read(&p)?);
        }
    }
    let Some(first) = evals.first() else {
        return Ok(None);
    };
    let tf = &first.teacher_forced;
    Ok(Some(SplitResult {
        split: split.to_string(),
        test_nll: tf.nll,
        test_accuracy: tf.with_eos.accuracy,
        ece: tf.with_eos.ece,
        mce: tf.with_eos.mce,
        adaptive_ece: tf.with_eos.adaptive_ece,
        eos_ece: evals
            .iter()
            .find_map(|e| e.teacher_forced.eos.as_ref())
            .map(|c| c.ece),
        temperature: first.fitted_temperature,
        ece_at_temperature: first.teacher_forced_at_fitted_temperature.with_eos.ece,
        oracle_mean_abs_gap: first.oracle.as_ref().map(|o| o.mean_abs_gap),
        oracle_ece: first.oracle.as_ref().map(|o| o.ece),
        erasure_entropy_ratio: first.erasure.as_ref().map(|e| e.entropy_ratio),
        erasure_kl_from_uniform: first.erasure.as_ref().map(|e| e.kl_from_uniform),
        erasure_top5_mass: first.erasure.as_ref().map(|e| e.top5_mass),
        beams: evals
            .iter()
            .map(|e| BeamResult {
                beam: e.search.beam_size,
                bleu: e.bleu.score,
                chrf: e.chrf,
                length_ratio: e.length_ratio,
                inference_ece: e.inference.ece,
                sentences_per_sec: e.sentences_per_sec,
                decode_seconds: e.sentences as f64 / e.sentences_per_sec,
                hypotheses_file: e.hypotheses_file.clone(),
            })
            .collect(),
        teacher_forced: Some(tf.with_eos.clone()),
        teacher_forced_at_temperature: Some(
            first.teacher_forced_at_fitted_temperature.with_eos.clone(),
        ),
    }))
}

/// The mean of a run's split results (the beams every split has); `None` unless there are at least two.
fn mean_over_splits(splits: &[SplitResult]) -> Option<SplitResult> {
    if splits.len() < 2 {
        return None;
    }
    let mean =
        |f: &dyn Fn(&SplitResult) -> f64| splits.iter().map(f).sum::<f64>() / splits.len() as f64;
    let mean_opt = |f: &dyn Fn(&SplitResult) -> Option<f64>| {
        let xs: Option<Vec<f64>> = splits.iter().map(f).collect();
        xs.map(|v| v.iter().sum::<f64>() / v.len() as f64)
    };
    let beams = splits[0]
        .beams
        .iter()
        .filter_map(|b| {
            let all: Option<Vec<&BeamResult>> = splits.iter().map(|s| s.at(b.beam)).collect();
            let all = all?;
            let m = |f: fn(&BeamResult) -> f64| {
                all.iter().map(|x| f(x)).sum::<f64>() / all.len() as f64
            };
            Some(BeamResult {
                beam: b.beam,
                bleu: m(|x| x.bleu),
                chrf: m(|x| x.chrf),
                length_ratio: m(|x| x.length_ratio),
                inference_ece: m(|x| x.inference_ece),
                sentences_per_sec: m(|x| x.sentences_per_sec),
                decode_seconds: m(|x| x.decode_seconds),
                hypotheses_file: String::new(),
            })
        })
        .collect();
    Some(SplitResult {
        split: MEAN_OVER_SPLITS.into(),
        test_nll: mean(&|s| s.test_nll),
        test_accuracy: mean(&|s| s.test_accuracy),
        ece: mean(&|s| s.ece),
        mce: mean(&|s| s.mce),
        adaptive_ece: mean(&|s| s.adaptive_ece),
        eos_ece: mean_opt(&|s| s.eos_ece),
        temperature: mean(&|s| s.temperature),
        ece_at_temperature: mean(&|s| s.ece_at_temperature),
        oracle_mean_abs_gap: mean_opt(&|s| s.oracle_mean_abs_gap),
        oracle_ece: mean_opt(&|s| s.oracle_ece),
        erasure_entropy_ratio: mean_opt(&|s| s.erasure_entropy_ratio),
        erasure_kl_from_uniform: mean_opt(&|s| s.erasure_kl_from_uniform),
        erasure_top5_mass: mean_opt(&|s| s.erasure_top5_mass),
        beams,
        teacher_forced: None,
        teacher_forced_at_temperature: None,
    })
}

/// Reads every finished run of the sweep (a run with `metrics.json` and at least one evaluation).
pub fn collect(sweep: &Sweep) -> Result<Vec<RunResult>> {
    let mut runs = Vec::new();
    for job in sweep.trainings() {
        if let Some(r) = read_run(
            sweep,
            &job.run,
            job.alpha,
            job.seed,
            &sweep.config.sweep.beams,
        )? {
            runs.push(r);
        }
    }
    Ok(runs)
}

/// One finished run directory with its evaluations at `beams`; `None` when it has not finished
/// training or has no evaluation yet.
pub(crate) fn read_run(
    sweep: &Sweep,
    run: &RunDir,
    alpha: f64,
    seed: u64,
    beams: &[usize],
) -> Result<Option<RunResult>> {
    if !run.metrics().exists() {
        return Ok(None);
    }
    let summary = TrainSummary::read(&run.metrics())?;
    let mut splits = Vec::new();
    for split in &sweep.test_splits {
        if let Some(s) = read_split(run, split, beams)? {
            splits.push(s);
        }
    }
    if splits.is_empty() {
        return Ok(None);
    }
    if splits.len() == sweep.test_splits.len()
        && let Some(mean) = mean_over_splits(&splits)
    {
        splits.push(mean);
    }
    let epochs = read_log(&run.log())?
        .into_iter()
        .filter_map(|line| match line {
            LogLine::Valid {
                epoch,
                metrics,
                greedy_bleu,
                train_seconds,
                ..
            } => Some(EpochResult {
                epoch,
                nll: metrics.nll,
                greedy_bleu,
                train_seconds,
            }),
            LogLine::Train { .. } => None,
        })
        .collect();
    Ok(Some(RunResult {
        alpha,
        seed,
        valid: summary.final_valid,
        train_seconds: summary.train_seconds,
        threads: summary.threads,
        epochs,
        splits,
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A split result whose every number is `x` (beams 1 and 4, BLEU `x` and `x + 1`).
    pub(crate) fn split(name: &str, x: f64) -> SplitResult {
        let beam = |beam: usize, bleu: f64| BeamResult {
            beam,
            bleu,
            chrf: 2.0 * x,
            length_ratio: x,
            inference_ece: x,
            sentences_per_sec: x,
            decode_seconds: x,
            hypotheses_file: format!("eval-{name}-beam{beam}.hyp.txt"),
        };
        SplitResult {
            split: name.into(),
            test_nll: x,
            test_accuracy: x,
            ece: x,
            mce: x,
            adaptive_ece: x,
            eos_ece: Some(x),
            temperature: x,
            ece_at_temperature: x,
            oracle_mean_abs_gap: None,
            oracle_ece: None,
            erasure_entropy_ratio: Some(x),
            erasure_kl_from_uniform: Some(x),
            erasure_top5_mass: Some(x),
            beams: vec![beam(1, x), beam(4, x + 1.0)],
            teacher_forced: None,
            teacher_forced_at_temperature: None,
        }
    }

    /// A run of `alpha` and `seed` with one result per split.
    pub(crate) fn run(alpha: f64, seed: u64, splits: Vec<SplitResult>) -> RunResult {
        RunResult {
            alpha,
            seed,
            valid: None,
            train_seconds: 10.0,
            threads: 2,
            epochs: vec![],
            splits,
        }
    }

    #[test]
    fn the_mean_over_splits_averages_every_number_and_needs_two_splits() {
        assert!(mean_over_splits(&[split("a", 1.0)]).is_none());
        let mut b = split("b", 3.0);
        b.eos_ece = None;
        b.beams.retain(|x| x.beam == 4);
        let m = mean_over_splits(&[split("a", 1.0), b]).unwrap();
        assert_eq!(m.split, MEAN_OVER_SPLITS);
        assert_eq!((m.test_nll, m.ece, m.temperature), (2.0, 2.0, 2.0));
        // A number one split lacks is absent from the mean, and so is a beam one split lacks.
        assert_eq!(m.eos_ece, None);
        assert_eq!(m.erasure_top5_mass, Some(2.0));
        assert_eq!(m.beams.len(), 1);
        assert_eq!(
            (m.beams[0].beam, m.beams[0].bleu, m.beams[0].chrf),
            (4, 3.0, 4.0)
        );
        assert!(m.beams[0].hypotheses_file.is_empty());
    }
}
