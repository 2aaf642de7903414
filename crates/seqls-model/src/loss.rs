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

use crate::ops::log_softmax::{Real, exp_shifted, max_and_sum};
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

/// Word-level distillation: the teacher's logits for the same rows (`L`: a slice of a batch's rows,
/// or the teacher's output tensor `[B, T, K]`), temperature `T` and weight `β` of the soft term.
#[derive(Debug, Clone, Copy)]
pub struct Distillation<L> {
    pub teacher_logits: L,
    pub temperature: f64,
    pub weight: f64,
}

impl Distillation<Tensor<3>> {
    /// The teacher's logits read out as f32 values (see [`Distillation::values`]).
    pub(crate) fn into_data(self) -> Distillation<TensorData> {
        Distillation {
            teacher_logits: f32_data(self.teacher_logits),
            temperature: self.temperature,
            weight: self.weight,
        }
    }
}

impl Distillation<TensorData> {
    /// The teacher's logits as a slice, for [`objective_rows`].
    pub(crate) fn values(&self) -> Distillation<&[f32]> {
        Distillation {
            teacher_logits: f32_slice(&self.teacher_logits),
            temperature: self.temperature,
            weight: self.weight,
        }
    }
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
    distill: Option<Distillation<&[R]>>,
    scale: f64,
    gradient: Option<&mut [R]>,
) -> LossSums {
    let k = classes;
    let rows = targets.len();
    assert_eq!(logits.len(), rows * k, "logits are [targets, classes]");
    let objective = ObjectiveRows::new(targets, classes, smoothing, distill, scale);
    let mut values = vec![RowValues::default(); rows];
    match gradient {
        Some(grad) => {
            assert_eq!(grad.len(), rows * k, "gradient is [targets, classes]");
            values
                .par_chunks_mut(ROWS_PER_TASK)
                .zip(grad.par_chunks_mut(ROWS_PER_TASK * k))
                .enumerate()
                .for_each(|(t, (out, grad))| {
                    let first = t * ROWS_PER_TASK;
                    objective.rows(first, &logits[first * k..][..out.len() * k], grad, out)
                });
        }
        None => values
            .par_chunks_mut(ROWS_PER_TASK)
            .enumerate()
            .for_each(|(t, out)| {
                // Row by row, into one row's room for the gradient that is not kept.
                let mut own = vec![R::ZERO; k];
                for (i, value) in out.iter_mut().enumerate() {
                    let row = t * ROWS_PER_TASK + i;
                    let z = &logits[row * k..(row + 1) * k];
                    objective.rows(row, z, &mut own, std::slice::from_mut(value));
                }
            }),
    }
    objective.sums(&values)
}

/// [`objective_rows`] taken a block of rows at a time, by whoever holds the rows' logits (the
/// output layer on the tiles computes them 32 rows at a time): [`ObjectiveRows::rows`] for each
/// block, in any order or in parallel, then [`ObjectiveRows::sums`] of every row's values.
pub(crate) struct ObjectiveRows<'a, R> {
    kernel: RowKernel<'a, R>,
    targets: &'a [u32],
}

impl<'a, R: Real> ObjectiveRows<'a, R> {
    /// The objective of [`objective_rows`] against `targets` (one per row of the batch).
    pub(crate) fn new(
        targets: &'a [u32],
        classes: usize,
        smoothing: Smoothing,
        distill: Option<Distillation<&'a [R]>>,
        scale: f64,
    ) -> Self {
        if let Some(d) = &distill {
            assert_eq!(
                d.teacher_logits.len(),
                targets.len() * classes,
                "teacher logits"
            );
        }
        let kernel = RowKernel {
            classes,
            weights: TargetWeights::new(smoothing.variant, smoothing.alpha, classes),
            pad: smoothing.pad_id as usize,
            distill,
            scale,
        };
        ObjectiveRows { kernel, targets }
    }

    /// Rows `first..first + values.len()` of the batch: their `logits` (`[rows, K]`) give their
    /// gradient (written over `gradient`, same shape) and their `values`.
    pub(crate) fn rows(
        &self,
        first: usize,
        logits: &[R],
        gradient: &mut [R],
        values: &mut [RowValues],
    ) {
        let k = self.kernel.classes;
        let mut scratch = vec![
            R::ZERO;
            if self.kernel.distill.is_some() {
                2 * k
            } else {
                0
            }
        ];
        for (i, value) in values.iter_mut().enumerate() {
            let row = first + i;
            *value = self.kernel.run(
                row,
                &logits[i * k..(i + 1) * k],
                self.targets[row],
                &mut gradient[i * k..(i + 1) * k],
                &mut scratch,
            );
        }
    }

    /// The sums of every row's values, in row order (so they do not depend on how the rows were
    /// shared out).
    pub(crate) fn sums(&self, values: &[RowValues]) -> LossSums {
        let mut sums = LossSums {
            target_entropy: self.kernel.weights.entropy,
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
}

/// One row's terms, nats.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RowValues {
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
    distill: Option<Distillation<&'a [R]>>,
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
    teacher: Option<Distillation<Tensor<3>>>,
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
/// `denominator`), with the teacher's logits as a tensor `[B, T, classes]`.
pub(crate) fn objective_and_gradient(
    logits: &[f32],
    targets: &[u32],
    classes: usize,
    smoothing: Smoothing,
    teacher: Option<Distillation<Tensor<3>>>,
    denominator: f64,
) -> (LossSums, Vec<f32>) {
    let teacher = teacher.map(Distillation::into_data);
    let distill = teacher.as_ref().map(Distillation::values);
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
