//! Label-smoothed cross-entropy over padded batches.
//!
//! For a row with reference token `y`, model log-probabilities `log p = log_softmax(logits)` over `K`
//! classes (the whole vocabulary, `<pad>` included) and smoothing weight `α`, the smoothed target `q` is
//! - `uniform` (default; Szegedy et al. 2016, PyTorch `CrossEntropyLoss(label_smoothing=α)`):
//!   `q = (1-α)·onehot(y) + α/K`,
//! - `fairseq`: `q_y = 1-α`, `q_k = α/(K-1)` for every `k ≠ y`,
//! - `annotated` (the Annotated Transformer): `q_y = 1-α`, `q_pad = 0`, `q_k = α/(K-2)` otherwise.
//!
//! Per row: smoothed loss `ce = -Σ_k q_k log p_k`, `nll = -log p_y`, and `kl = ce - H(q)` with
//! `H(q) = -Σ_k q_k log q_k` (0 log 0 = 0), a constant of `α`, `K` and the variant. Rows whose reference
//! is `<pad>` contribute nothing and are not counted. All quantities are in nats. [`LossSums`] holds sums
//! over the non-pad rows; the training objective divides the smoothed sum by the number of non-pad
//! tokens ([`Normalize::Tokens`], default) or by the number of sentences ([`Normalize::Sentences`], the
//! classic KLDivLoss recipe). Perplexity is `exp(nll_sum / n_tokens)`, never the exponential of the
//! smoothed loss.
//!
//! Word-level knowledge distillation (Hinton et al. 2015; Kim & Rush 2016),
//! [`distillation_objective`]: with teacher and student logits at temperature `T`,
//! `p^T = softmax(logits / T)`, each non-pad row adds
//! `kl = Σ_k p_t^T(k) · (log p_t^T(k) − log p_s^T(k))` (nats; the teacher is a constant). The training
//! objective with a teacher is `[(1 − β)·Σ ce + β·T²·Σ kl] / N` over the same non-pad rows and with the
//! same normaliser `N` as above; `T²` keeps the gradient scale of the soft term independent of `T`
//! (Hinton et al. 2015).

use crate::log_softmax::{Real, exp_shifted, max_and_sum};
use crate::tensors::{f32_data, f32_slice};
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Which smoothed target distribution to use (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmoothingVariant {
    #[default]
    Uniform,
    Fairseq,
    Annotated,
}

impl std::str::FromStr for SmoothingVariant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "uniform" => Ok(Self::Uniform),
            "fairseq" => Ok(Self::Fairseq),
            "annotated" => Ok(Self::Annotated),
            other => Err(format!(
                "unknown label-smoothing variant {other:?}: use uniform, fairseq or annotated"
            )),
        }
    }
}

/// What the training loss is divided by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    /// Per non-pad target token.
    #[default]
    #[serde(alias = "token")]
    Tokens,
    /// Per sentence (batch rows).
    #[serde(alias = "sentence")]
    Sentences,
}

impl std::str::FromStr for Normalize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "token" | "tokens" => Ok(Self::Tokens),
            "sentence" | "sentences" => Ok(Self::Sentences),
            other => Err(format!(
                "unknown normalisation {other:?}: use token or sentence"
            )),
        }
    }
}

/// Weights of the smoothed target: `ce = w_y · nll + w_all · (-Σ_k log p_k) + w_pad · (-log p_pad)`.
#[derive(Debug, Clone, Copy)]
struct TargetWeights {
    on_reference: f64,
    on_all: f64,
    on_pad: f64,
    /// Entropy `H(q)` of the smoothed target, nats.
    entropy: f64,
}

fn xlogx(x: f64) -> f64 {
    if x > 0.0 { x * x.ln() } else { 0.0 }
}

impl TargetWeights {
    fn new(variant: SmoothingVariant, alpha: f64, classes: usize) -> Self {
        let k = classes as f64;
        match variant {
            SmoothingVariant::Uniform => TargetWeights {
                on_reference: 1.0 - alpha,
                on_all: alpha / k,
                on_pad: 0.0,
                entropy: -(xlogx(1.0 - alpha + alpha / k) + (k - 1.0) * xlogx(alpha / k)),
            },
            SmoothingVariant::Fairseq => {
                let other = alpha / (k - 1.0);
                TargetWeights {
                    on_reference: 1.0 - alpha - other,
                    on_all: other,
                    on_pad: 0.0,
                    entropy: -(xlogx(1.0 - alpha) + (k - 1.0) * xlogx(other)),
                }
            }
            SmoothingVariant::Annotated => {
                let other = alpha / (k - 2.0);
                TargetWeights {
                    on_reference: 1.0 - alpha - other,
                    on_all: other,
                    on_pad: -other,
                    entropy: -(xlogx(1.0 - alpha) + (k - 2.0) * xlogx(other)),
                }
            }
        }
    }
}

/// Sums of the objective's terms over the non-pad rows of a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossSums {
    /// `Σ ce`, nats.
    pub smoothed: f64,
    /// `Σ nll`, nats.
    pub nll: f64,
    /// `Σ kl` from the teacher's distribution at temperature `T` (0 without a teacher), nats.
    pub distill_kl: f64,
    /// Rows whose first largest logit is the reference.
    pub correct: usize,
    /// Non-pad rows.
    pub tokens: usize,
    /// `H(q)` of the smoothed target, nats: `Σ KL(q ‖ p) = smoothed − tokens · H(q)`.
    pub target_entropy: f64,
}

impl LossSums {
    /// `Σ KL(q ‖ p)` over non-pad rows, nats.
    pub fn target_kl(&self) -> f64 {
        self.smoothed - self.tokens as f64 * self.target_entropy
    }
}

/// The label-smoothed target: weight `α`, [`SmoothingVariant`], and the `<pad>` id (rows whose reference
/// is `<pad>` do not count).
#[derive(Debug, Clone, Copy)]
pub struct Smoothing {
    pub alpha: f64,
    pub variant: SmoothingVariant,
    pub pad_id: u32,
}

/// Word-level distillation of a row: the teacher's logits for the same rows, temperature `T` and
/// weight `β` of the soft term.
#[derive(Debug, Clone, Copy)]
pub struct Distillation<'a, R> {
    pub teacher_logits: &'a [R],
    pub temperature: f64,
    pub weight: f64,
}

/// Rows per parallel task of [`objective_rows`].
const ROWS_PER_TASK: usize = 16;

/// The objective `(1 − β)·Σ ce + β·T²·Σ kl` (β = 0 without `distill`) of `logits` `[N, K]` (row-major)
/// against `targets` `[N]`, with, when `gradient` is given, its derivative with respect to the logits
/// times `scale` written there (`[N, K]`; 0 on pad rows). For a non-pad row with `p = softmax(z)`, target
/// `q` (Σq = 1 for every variant), `p_s^T = softmax(z / T)` and the teacher's `p_t^T`:
///
/// `∂/∂z_k = (1 − β)·(p_k·Σq − q_k) + β·T·(p_s^T(k) − p_t^T(k))`.
///
/// One pass per term over each row and no temporaries of the batch's size: this replaces the
/// backend's composition of log-softmax, gather, sums and their backward passes (a dozen passes over
/// `[N, K]`). Rows run in parallel; their values are summed in row order (in `f64`), so the result does
/// not depend on the number of threads.
pub fn objective_rows<R: Real>(
    logits: &[R],
    targets: &[u32],
    classes: usize,
    smoothing: Smoothing,
    distill: Option<Distillation<'_, R>>,
    scale: f64,
    gradient: Option<&mut [R]>,
) -> LossSums {
    let k = classes;
    let rows = targets.len();
    assert_eq!(logits.len(), rows * k, "logits are [targets, classes]");
    if let Some(d) = &distill {
        assert_eq!(d.teacher_logits.len(), logits.len(), "teacher logits");
    }
    let weights = TargetWeights::new(smoothing.variant, smoothing.alpha, k);
    let kernel = RowKernel {
        classes: k,
        weights,
        pad: smoothing.pad_id as usize,
        distill,
        scale,
    };
    let mut values = vec![RowValues::default(); rows];
    let task = |first: usize, out: &mut [RowValues], grad: &mut [R]| {
        let mut scratch = vec![R::ZERO; if kernel.distill.is_some() { 2 * k } else { 0 }];
        let mut own = Vec::new();
        for (i, value) in out.iter_mut().enumerate() {
            let row = first + i;
            let g = if grad.is_empty() {
                own.resize(k, R::ZERO);
                &mut own[..]
            } else {
                &mut grad[i * k..(i + 1) * k]
            };
            *value = kernel.run(
                row,
                &logits[row * k..(row + 1) * k],
                targets[row],
                g,
                &mut scratch,
            );
        }
    };
    match gradient {
        Some(grad) => {
            assert_eq!(grad.len(), rows * k, "gradient is [targets, classes]");
            values
                .par_chunks_mut(ROWS_PER_TASK)
                .zip(grad.par_chunks_mut(ROWS_PER_TASK * k))
                .enumerate()
                .for_each(|(t, (out, grad))| task(t * ROWS_PER_TASK, out, grad));
        }
        None => values
            .par_chunks_mut(ROWS_PER_TASK)
            .enumerate()
            .for_each(|(t, out)| task(t * ROWS_PER_TASK, out, &mut [])),
    }
    let mut sums = LossSums {
        target_entropy: weights.entropy,
        ..LossSums::default()
    };
    for v in values.iter().filter(|v| v.counted) {
        sums.smoothed += v.smoothed;
        sums.nll += v.nll;
        sums.distill_kl += v.distill_kl;
        sums.correct += v.correct as usize;
        sums.tokens += 1;
    }
    sums
}

/// One row's terms, nats.
#[derive(Debug, Clone, Copy, Default)]
struct RowValues {
    counted: bool,
    smoothed: f64,
    nll: f64,
    distill_kl: f64,
    correct: bool,
}

/// What every row of one [`objective_rows`] call shares.
struct RowKernel<'a, R> {
    classes: usize,
    weights: TargetWeights,
    pad: usize,
    distill: Option<Distillation<'a, R>>,
    scale: f64,
}

impl<R: Real> RowKernel<'_, R> {
    /// The terms of row `row` (`z`, reference `target`), its gradient written to `g`; `scratch` holds
    /// `2K` values when distilling.
    fn run(&self, row: usize, z: &[R], target: u32, g: &mut [R], scratch: &mut [R]) -> RowValues {
        #[cfg(target_arch = "x86_64")]
        if std::any::TypeId::of::<R>() == std::any::TypeId::of::<f32>()
            && std::arch::is_x86_feature_detected!("avx2")
        {
            #[target_feature(enable = "avx2")]
            fn avx2<R: Real>(
                kernel: &RowKernel<'_, R>,
                row: usize,
                z: &[R],
                target: u32,
                g: &mut [R],
                scratch: &mut [R],
            ) -> RowValues {
                kernel.row(row, z, target, g, scratch)
            }
            // SAFETY: the CPU supports AVX2 (checked above).
            return unsafe { avx2(self, row, z, target, g, scratch) };
        }
        self.row(row, z, target, g, scratch)
    }

    #[inline(always)]
    fn row(&self, row: usize, z: &[R], target: u32, g: &mut [R], scratch: &mut [R]) -> RowValues {
        let y = target as usize;
        if y == self.pad {
            g.iter_mut().for_each(|x| *x = R::ZERO);
            return RowValues::default();
        }
        let w = &self.weights;
        let k = self.classes as f64;
        let (max, sum_z) = max_and_sum(z);
        // The first largest logit is the reference: only then is the prefix scanned.
        let correct = z[y] == max && z[..y].iter().all(|&x| x < max);
        let sum_e = exp_shifted(z, max, R::from_f64(1.0), g).to_f64();
        let lse = max.to_f64() + sum_e.ln();
        let nll = lse - z[y].to_f64();
        let smoothed = w.on_reference * nll
            + w.on_all * (k * lse - sum_z.to_f64())
            + w.on_pad * (lse - z[self.pad].to_f64());
        let beta = self.distill.map_or(0.0, |d| d.weight);
        let c = self.scale * (1.0 - beta);
        let q_total = k * w.on_all + w.on_reference + w.on_pad;
        let (a, b) = (R::from_f64(c * q_total / sum_e), R::from_f64(c * w.on_all));
        g.iter_mut().for_each(|x| *x = a * *x - b);
        g[y] = g[y] - R::from_f64(c * w.on_reference);
        g[self.pad] = g[self.pad] - R::from_f64(c * w.on_pad);
        let distill_kl = match &self.distill {
            None => 0.0,
            Some(d) => {
                let t = &d.teacher_logits[row * z.len()..(row + 1) * z.len()];
                let (student, teacher) = scratch.split_at_mut(z.len());
                let inv_t = R::from_f64(1.0 / d.temperature);
                let (t_max, _) = max_and_sum(t);
                let t_sum = exp_shifted(t, t_max, inv_t, teacher).to_f64();
                let s_sum = exp_shifted(z, max, inv_t, student).to_f64();
                // KL = Σ p_t·(log p_t − log p_s) with log p = (x − max)/T − ln Σ and Σ p_t = 1.
                let mut cross = 0.0;
                let (gs, gt) = (
                    R::from_f64(self.scale * d.weight * d.temperature / s_sum),
                    R::from_f64(self.scale * d.weight * d.temperature / t_sum),
                );
                for i in 0..z.len() {
                    cross += teacher[i].to_f64() * ((t[i] - t_max) - (z[i] - max)).to_f64();
                    g[i] += gs * student[i] - gt * teacher[i];
                }
                cross / t_sum / d.temperature + s_sum.ln() - t_sum.ln()
            }
        };
        RowValues {
            counted: true,
            smoothed,
            nll,
            distill_kl,
            correct,
        }
    }
}

/// The terms of `logits` `[B, T, K]` against `targets` (`[B, T]`, row-major ids), without a gradient.
pub fn loss_sums(logits: Tensor<3>, targets: &[u32], smoothing: Smoothing) -> LossSums {
    let [_, _, k] = logits.dims();
    let values = f32_data(logits);
    objective_rows(f32_slice(&values), targets, k, smoothing, None, 1.0, None)
}

/// One batch's training objective (see [`objective_rows`]): its sums, and a scalar `Σ z ⊙ G` whose
/// gradient with respect to `logits` is `G = ∂objective/∂z / denominator`, computed on the CPU and
/// entered as a constant. Its value is not the objective: read that from the sums.
pub fn training_objective(
    logits: Tensor<3>,
    targets: &[u32],
    smoothing: Smoothing,
    teacher: Option<(Tensor<3>, f64, f64)>,
    denominator: f64,
) -> (LossSums, Tensor<1>) {
    let dims = logits.dims();
    let data = f32_data(logits.clone());
    let (sums, gradient) = objective_and_gradient(
        f32_slice(&data),
        targets,
        dims[2],
        smoothing,
        teacher,
        denominator,
    );
    let gradient = Tensor::<3>::from_data(TensorData::new(gradient, dims), &logits.device());
    (sums, (logits * gradient).sum())
}

/// [`objective_rows`] of `logits` (`[targets, classes]`, row-major) with its gradient `G` (divided by
/// `denominator`), the teacher given as `(logits [B, T, classes], temperature, weight)`.
pub(crate) fn objective_and_gradient(
    logits: &[f32],
    targets: &[u32],
    classes: usize,
    smoothing: Smoothing,
    teacher: Option<(Tensor<3>, f64, f64)>,
    denominator: f64,
) -> (LossSums, Vec<f32>) {
    let teacher =
        teacher.map(|(logits, temperature, weight)| (f32_data(logits), temperature, weight));
    let distill = teacher
        .as_ref()
        .map(|(data, temperature, weight)| Distillation {
            teacher_logits: f32_slice(data),
            temperature: *temperature,
            weight: *weight,
        });
    let mut gradient = vec![0f32; logits.len()];
    let sums = objective_rows(
        logits,
        targets,
        classes,
        smoothing,
        distill,
        1.0 / denominator,
        Some(&mut gradient),
    );
    (sums, gradient)
}

/// The summed training objective with a teacher: `(1 − β)·Σ ce + β·T²·Σ kl` (nats; divide by `N`).
pub fn distillation_objective(sums: &LossSums, weight: f64, temperature: f64) -> f64 {
    (1.0 - weight) * sums.smoothed + weight * temperature * temperature * sums.distill_kl
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::log_softmax;
    use burn::tensor::{Device, Int};
    use serde_json::Value;
    use std::path::PathBuf;

    /// `$SEQLS_GOLDEN_DIR/label_smoothing.json`, else the project's copy in `testdata/golden`.
    fn golden_path() -> PathBuf {
        let dir = std::env::var_os("SEQLS_GOLDEN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden")
            });
        dir.join("label_smoothing.json")
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-12)
    }

    fn smoothing(alpha: f64, variant: SmoothingVariant, pad_id: u32) -> Smoothing {
        Smoothing {
            alpha,
            variant,
            pad_id,
        }
    }

    /// Every golden case, computed in f64, matches to 1e-6 relative; the f32 kernel to 1e-5.
    #[test]
    fn matches_pytorch_golden_vectors() {
        let path = golden_path();
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let golden: Value = serde_json::from_str(&text).unwrap();
        let cases = golden["cases"].as_array().expect("cases");
        assert!(!cases.is_empty());
        for (i, case) in cases.iter().enumerate() {
            let (b, t, k) = (
                case["batch"].as_u64().unwrap() as usize,
                case["seq_len"].as_u64().unwrap() as usize,
                case["num_classes"].as_u64().unwrap() as usize,
            );
            let logits: Vec<f64> = case["logits"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_array().unwrap())
                .flat_map(|c| c.as_array().unwrap())
                .map(|x| x.as_f64().unwrap())
                .collect();
            let targets: Vec<u32> = case["targets"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_array().unwrap())
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(logits.len(), b * t * k, "case {i}");
            let variant: SmoothingVariant = case["variant"].as_str().unwrap().parse().unwrap();
            let alpha = case["alpha"].as_f64().unwrap();
            let pad = case["pad_id"].as_u64().unwrap() as u32;
            let ls = smoothing(alpha, variant, pad);
            let logits32: Vec<f32> = logits.iter().map(|&x| x as f32).collect();
            for (precision, out, rel) in [
                (
                    "f64",
                    objective_rows(&logits, &targets, k, ls, None, 1.0, None),
                    1e-6,
                ),
                (
                    "f32",
                    objective_rows(&logits32, &targets, k, ls, None, 1.0, None),
                    1e-5,
                ),
            ] {
                let n = case["n_tokens"].as_u64().unwrap() as usize;
                assert_eq!(out.tokens, n, "case {i}");
                for (name, got, want) in [
                    ("ce_sum", out.smoothed, case["ce_sum"].as_f64().unwrap()),
                    (
                        "ce_mean",
                        out.smoothed / n as f64,
                        case["ce_mean"].as_f64().unwrap(),
                    ),
                    ("kl_sum", out.target_kl(), case["kl_sum"].as_f64().unwrap()),
                    ("nll_sum", out.nll, case["nll_sum"].as_f64().unwrap()),
                ] {
                    assert!(
                        close(got, want, rel),
                        "case {i} ({variant:?}, α={alpha}, {precision}): {name} = {got}, golden {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn pad_rows_are_ignored_and_alpha_zero_is_nll() {
        let logits = [1.0f32, 2.0, 0.5, 0.1, 3.0, 0.2, 9.0, 9.0, 9.0];
        let out = objective_rows(
            &logits,
            &[1, 2, 0],
            3,
            smoothing(0.0, SmoothingVariant::Uniform, 0),
            None,
            1.0,
            None,
        );
        assert_eq!(out.tokens, 2);
        assert!((out.smoothed - out.nll).abs() < 1e-6);
        let want = -(2.0f64 - (1f64.exp() + 2f64.exp() + 0.5f64.exp()).ln())
            - (0.2f64 - (0.1f64.exp() + 3f64.exp() + 0.2f64.exp()).ln());
        assert!((out.nll - want).abs() < 1e-5, "{} vs {want}", out.nll);
        assert_eq!(out.correct, 1);
    }

    /// The distillation objective against an independent float64 computation by hand: padding rows,
    /// T ∈ {1, 2}, β ∈ {0, 0.5, 1}, uniform smoothing α = 0.1.
    #[test]
    fn distillation_objective_matches_float64_by_hand() {
        let (rows, k) = (6usize, 5usize);
        let student: Vec<f64> = (0..rows * k)
            .map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.4)
            .collect();
        let teacher: Vec<f64> = (0..rows * k)
            .map(|i| ((i * 53 % 13) as f64 - 6.0) * 0.5)
            .collect();
        let targets = [3u32, 1, 0, 4, 2, 0]; // 0 = <pad>: rows 2 and 5 do not count
        let alpha = 0.1;
        let log_softmax64 = |row: &[f64], temp: f64| -> Vec<f64> {
            let z: Vec<f64> = row.iter().map(|x| x / temp).collect();
            let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + z.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
            z.iter().map(|x| x - lse).collect()
        };
        for temp in [1.0, 2.0] {
            for beta in [0.0, 0.5, 1.0] {
                let (mut ce, mut kl) = (0.0, 0.0);
                for row in 0..rows {
                    let y = targets[row] as usize;
                    if y == 0 {
                        continue;
                    }
                    let s = &student[row * k..(row + 1) * k];
                    let te = &teacher[row * k..(row + 1) * k];
                    let lp = log_softmax64(s, 1.0);
                    for (c, l) in lp.iter().enumerate() {
                        let q = if c == y { 1.0 - alpha } else { 0.0 } + alpha / k as f64;
                        ce -= q * l;
                    }
                    let (ls, lt) = (log_softmax64(s, temp), log_softmax64(te, temp));
                    kl += (0..k).map(|c| lt[c].exp() * (lt[c] - ls[c])).sum::<f64>();
                }
                let want = (1.0 - beta) * ce + beta * temp * temp * kl;
                let student32: Vec<f32> = student.iter().map(|&x| x as f32).collect();
                let teacher32: Vec<f32> = teacher.iter().map(|&x| x as f32).collect();
                let sums = objective_rows(
                    &student32,
                    &targets,
                    k,
                    smoothing(alpha, SmoothingVariant::Uniform, 0),
                    Some(Distillation {
                        teacher_logits: &teacher32,
                        temperature: temp,
                        weight: beta,
                    }),
                    1.0,
                    None,
                );
                assert!(close(sums.distill_kl, kl, 1e-5), "T = {temp}: kl");
                let got = distillation_objective(&sums, beta, temp);
                assert!(
                    close(got, want, 1e-5),
                    "T = {temp}, β = {beta}: {got} vs {want}"
                );
            }
        }
        // Identical logits: no divergence at any temperature.
        let same = objective_rows(
            &student,
            &targets,
            k,
            smoothing(alpha, SmoothingVariant::Uniform, 0),
            Some(Distillation {
                teacher_logits: &student,
                temperature: 2.0,
                weight: 0.5,
            }),
            1.0,
            None,
        );
        assert!(same.distill_kl.abs() < 1e-12, "{}", same.distill_kl);
    }

    /// The objective as the backend's composition (log-softmax, gather, sums; the teacher's side a
    /// constant), differentiated by burn's autodiff: the reference for the fused gradient.
    fn composed_objective(
        logits: Tensor<3>,
        teacher: Option<Tensor<3>>,
        targets: Tensor<2, Int>,
        ls: Smoothing,
        temperature: f64,
        beta: f64,
    ) -> Tensor<1> {
        let [b, t, k] = logits.dims();
        let w = TargetWeights::new(ls.variant, ls.alpha, k);
        let log_probs = log_softmax(logits.clone(), 2);
        let mask = targets
            .clone()
            .not_equal_elem(ls.pad_id as i64)
            .float()
            .reshape([b, t, 1]);
        let reference = targets.reshape([b, t, 1]);
        let nll = log_probs.clone().gather(2, reference).neg() * mask.clone();
        let all = log_probs.clone().sum_dim(2).neg() * mask.clone();
        let pad = log_probs.narrow(2, ls.pad_id as usize, 1).neg() * mask.clone();
        let ce =
            (nll.mul_scalar(w.on_reference) + all.mul_scalar(w.on_all) + pad.mul_scalar(w.on_pad))
                .sum();
        match teacher {
            None => ce,
            Some(teacher) => {
                let lt = log_softmax(teacher.div_scalar(temperature), 2);
                let pt = lt.clone().exp();
                let ls = log_softmax(logits.div_scalar(temperature), 2);
                let kl = ((pt * (lt - ls)).sum_dim(2) * mask).sum();
                ce.mul_scalar(1.0 - beta) + kl.mul_scalar(beta * temperature * temperature)
            }
        }
    }

    /// The gradient that [`training_objective`] hands to autodiff equals autodiff's gradient of the
    /// composed objective, for every variant, with and without a teacher, padding rows included.
    #[test]
    fn fused_gradient_equals_autodiff_of_the_composition() {
        let device = Device::flex().autodiff();
        let (b, t, k) = (3usize, 4usize, 37usize);
        let student: Vec<f32> = (0..b * t * k)
            .map(|i| ((i * 7919 % 101) as f32 - 50.0) * 0.07)
            .collect();
        let teacher: Vec<f32> = (0..b * t * k)
            .map(|i| ((i * 104_729 % 89) as f32 - 44.0) * 0.09)
            .collect();
        let targets: Vec<u32> = (0..b * t)
            .map(|i| {
                if i % 5 == 4 {
                    0
                } else {
                    (i * 13 % 36 + 1) as u32
                }
            })
            .collect();
        let tensor =
            |v: &[f32]| Tensor::<3>::from_data(TensorData::new(v.to_vec(), [b, t, k]), &device);
        let ids = Tensor::<2, Int>::from_data(
            TensorData::new(targets.iter().map(|&x| x as i64).collect(), [b, t]),
            &device,
        );
        let denominator = 7.0;
        for variant in [
            SmoothingVariant::Uniform,
            SmoothingVariant::Fairseq,
            SmoothingVariant::Annotated,
        ] {
            for kd in [None, Some((1.0, 0.5)), Some((2.0, 0.5))] {
                let ls = smoothing(0.1, variant, 0);
                let z = tensor(&student).require_grad();
                let (temperature, beta) = kd.unwrap_or((1.0, 0.0));
                let teacher_t = kd.map(|_| tensor(&teacher));
                let want = composed_objective(
                    z.clone(),
                    teacher_t.clone(),
                    ids.clone(),
                    ls,
                    temperature,
                    beta,
                );
                let want_value = want.clone().into_scalar::<f64>();
                let want_grad: Vec<f32> = z
                    .grad(&want.div_scalar(denominator).backward())
                    .unwrap()
                    .into_data()
                    .try_into_vec()
                    .unwrap();
                let z = tensor(&student).require_grad();
                let (sums, surrogate) = training_objective(
                    z.clone(),
                    &targets,
                    ls,
                    teacher_t.map(|t| (t, temperature, beta)),
                    denominator,
                );
                let got_value = distillation_objective(&sums, beta, temperature);
                assert!(
                    close(got_value, want_value, 1e-5),
                    "{variant:?} {kd:?}: {got_value} vs {want_value}"
                );
                let got_grad: Vec<f32> = z
                    .grad(&surrogate.backward())
                    .unwrap()
                    .into_data()
                    .try_into_vec()
                    .unwrap();
                let worst = got_grad
                    .iter()
                    .zip(&want_grad)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    worst < 1e-6,
                    "{variant:?} {kd:?}: gradient differs by {worst}"
                );
                assert!(want_grad.iter().any(|g| g.abs() > 1e-3));
            }
        }
    }

    /// The f32 kernel (AVX2 where the CPU has it, rows over several tasks) agrees with the f64 one on
    /// vocabulary-sized rows, and its sums do not depend on the number of threads.
    #[test]
    fn f32_kernel_matches_f64_and_ignores_threads() {
        let (rows, k) = (40usize, 8003usize);
        let logits: Vec<f64> = (0..rows * k)
            .map(|i| ((i * 7919 % 1000) as f64) / 37.0 - 9.0)
            .collect();
        let logits32: Vec<f32> = logits.iter().map(|&x| x as f32).collect();
        let targets: Vec<u32> = (0..rows).map(|i| (i * 211 % k) as u32).collect();
        let ls = smoothing(0.1, SmoothingVariant::Uniform, 1);
        let exact = objective_rows(&logits, &targets, k, ls, None, 1.0, None);
        let mut grad = vec![0f32; rows * k];
        let fast = objective_rows(&logits32, &targets, k, ls, None, 1.0, Some(&mut grad));
        assert!(close(fast.smoothed, exact.smoothed, 1e-6));
        assert!(close(fast.nll, exact.nll, 1e-6));
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| objective_rows(&logits32, &targets, k, ls, None, 1.0, None));
        assert_eq!(one, fast);
        // Each row's gradient sums to zero (Σ p = Σ q = 1).
        for row in grad.chunks(k) {
            assert!(row.iter().map(|&x| x as f64).sum::<f64>().abs() < 1e-5);
        }
    }
}
