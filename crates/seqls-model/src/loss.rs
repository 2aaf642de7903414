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
//! is `<pad>` contribute nothing and are not counted. All quantities are in nats. [`TokenLoss`] holds sums
//! over the non-pad rows; the training objective divides the smoothed sum by the number of non-pad
//! tokens ([`Normalize::Tokens`], default) or by the number of sentences ([`Normalize::Sentences`], the
//! classic KLDivLoss recipe). Perplexity is `exp(nll_sum / n_tokens)`, never the exponential of the
//! smoothed loss.
//!
//! Word-level knowledge distillation (Hinton et al. 2015; Kim & Rush 2016), [`distillation_kl`]: with
//! teacher and student logits at temperature `T`, `p^T = softmax(logits / T)`, each non-pad row adds
//! `kl = Σ_k p_t^T(k) · (log p_t^T(k) − log p_s^T(k))` (nats; the teacher is a constant). The training
//! objective with a teacher is `[(1 − β)·Σ ce + β·T²·Σ kl] / N` over the same non-pad rows and with the
//! same normaliser `N` as above; `T²` keeps the gradient scale of the soft term independent of `T`
//! (Hinton et al. 2015).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};
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

/// Sums over the non-pad rows of a batch, as 1-element tensors (so the smoothed sum can be
/// differentiated), plus the row count.
#[derive(Debug, Clone)]
pub struct TokenLoss {
    /// `Σ ce` over non-pad rows, nats.
    pub smoothed_sum: Tensor<1>,
    /// `Σ nll` over non-pad rows, nats.
    pub nll_sum: Tensor<1>,
    /// Rows whose argmax equals the reference.
    pub correct: Tensor<1, Int>,
    /// Number of non-pad rows.
    pub n_tokens: usize,
    /// `H(q)`, so that `kl_sum = smoothed_sum - n_tokens · H(q)`.
    pub target_entropy: f64,
}

impl TokenLoss {
    /// `Σ kl` over non-pad rows, nats.
    pub fn kl_sum(&self) -> f64 {
        self.smoothed_sum.clone().into_scalar::<f64>() - self.n_tokens as f64 * self.target_entropy
    }
}

/// Computes the padded label-smoothed loss of `logits` `[B, T, K]` against `targets` `[B, T]`.
pub fn label_smoothed_loss(
    logits: Tensor<3>,
    targets: Tensor<2, Int>,
    alpha: f64,
    variant: SmoothingVariant,
    pad_id: u32,
) -> TokenLoss {
    let [b, t, k] = logits.dims();
    let weights = TargetWeights::new(variant, alpha, k);
    let log_probs = log_softmax(logits, 2);
    let not_pad = targets.clone().not_equal_elem(pad_id as i64);
    let n_tokens: usize = not_pad.clone().int().sum().into_scalar::<i64>() as usize;
    let mask = not_pad.float().reshape([b, t, 1]);

    let reference = targets.clone().reshape([b, t, 1]);
    let nll = log_probs.clone().gather(2, reference.clone()).neg() * mask.clone();
    let nll_sum = nll.clone().sum();
    let mut smoothed = nll.mul_scalar(weights.on_reference);
    if weights.on_all != 0.0 {
        let all = log_probs.clone().sum_dim(2).neg() * mask.clone();
        smoothed = smoothed + all.mul_scalar(weights.on_all);
    }
    if weights.on_pad != 0.0 {
        let pad = log_probs.clone().narrow(2, pad_id as usize, 1).neg() * mask;
        smoothed = smoothed + pad.mul_scalar(weights.on_pad);
    }
    let predicted = log_probs.argmax(2);
    let correct = predicted
        .equal(reference)
        .int()
        .mask_fill(targets.equal_elem(pad_id as i64).reshape([b, t, 1]), 0)
        .sum();
    TokenLoss {
        smoothed_sum: smoothed.sum(),
        nll_sum,
        correct,
        n_tokens,
        target_entropy: weights.entropy,
    }
}

/// `Σ kl` over the non-pad rows of `targets` (see the module documentation): the KL divergence from
/// the teacher's distribution at temperature `temperature` to the student's, nats, differentiable in
/// `student_logits`. Both logits are `[B, T, K]`; `teacher_logits` is used as a constant.
pub fn distillation_kl(
    student_logits: Tensor<3>,
    teacher_logits: Tensor<3>,
    targets: Tensor<2, Int>,
    temperature: f64,
    pad_id: u32,
) -> Tensor<1> {
    let [b, t, _] = student_logits.dims();
    let mask = targets
        .not_equal_elem(pad_id as i64)
        .float()
        .reshape([b, t, 1]);
    // The teacher's side is a constant: `Σ_k p_t log p_t` and `p_t` are computed outside the graph
    // (on the teacher's device), so the graph holds only `−Σ_k p_t · log p_s` and the mask.
    let teacher = log_softmax(teacher_logits.without_autodiff().div_scalar(temperature), 2);
    let teacher_probs = teacher.clone().exp();
    let neg_entropy =
        (teacher_probs.clone() * teacher).sum_dim(2) * mask.clone().without_autodiff();
    let student = log_softmax(student_logits.div_scalar(temperature), 2);
    let cross = (student * teacher_probs).sum_dim(2) * mask;
    neg_entropy.sum() - cross.sum()
}

/// The summed training objective with a teacher: `(1 − β)·Σ ce + β·T²·Σ kl` (nats; divide by `N`).
pub fn distillation_objective(
    smoothed_sum: Tensor<1>,
    kl_sum: Tensor<1>,
    weight: f64,
    temperature: f64,
) -> Tensor<1> {
    smoothed_sum.mul_scalar(1.0 - weight) + kl_sum.mul_scalar(weight * temperature * temperature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
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

    /// Every golden case, computed in f64 on the flex backend, matches to 1e-6 relative.
    #[test]
    fn matches_pytorch_golden_vectors() {
        let path = golden_path();
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let golden: Value = serde_json::from_str(&text).unwrap();
        let cases = golden["cases"].as_array().expect("cases");
        assert!(!cases.is_empty());
        let device = Device::flex();
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
            let targets: Vec<i64> = case["targets"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_array().unwrap())
                .map(|x| x.as_i64().unwrap())
                .collect();
            assert_eq!(logits.len(), b * t * k, "case {i}");
            let variant: SmoothingVariant = case["variant"].as_str().unwrap().parse().unwrap();
            let alpha = case["alpha"].as_f64().unwrap();
            let pad = case["pad_id"].as_u64().unwrap() as u32;
            let logits = Tensor::<3>::from_data(TensorData::new(logits, [b, t, k]), &device);
            let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [b, t]), &device);
            let out = label_smoothed_loss(logits, targets, alpha, variant, pad);
            let n = case["n_tokens"].as_u64().unwrap() as usize;
            assert_eq!(out.n_tokens, n, "case {i}");
            let ce_sum = out.smoothed_sum.clone().into_scalar::<f64>();
            let nll_sum = out.nll_sum.clone().into_scalar::<f64>();
            for (name, got, want) in [
                ("ce_sum", ce_sum, case["ce_sum"].as_f64().unwrap()),
                (
                    "ce_mean",
                    ce_sum / n as f64,
                    case["ce_mean"].as_f64().unwrap(),
                ),
                ("kl_sum", out.kl_sum(), case["kl_sum"].as_f64().unwrap()),
                ("nll_sum", nll_sum, case["nll_sum"].as_f64().unwrap()),
            ] {
                assert!(
                    close(got, want, 1e-6),
                    "case {i} ({variant:?}, α={alpha}): {name} = {got}, golden {want}"
                );
            }
        }
    }

    #[test]
    fn pad_rows_are_ignored_and_alpha_zero_is_nll() {
        let device = Device::flex();
        let logits = Tensor::<3>::from_data(
            TensorData::new(
                vec![1.0f32, 2.0, 0.5, 0.1, 3.0, 0.2, 9.0, 9.0, 9.0],
                [1, 3, 3],
            ),
            &device,
        );
        let targets =
            Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 2, 0], [1, 3]), &device);
        let out = label_smoothed_loss(logits, targets, 0.0, SmoothingVariant::Uniform, 0);
        assert_eq!(out.n_tokens, 2);
        let ce: f64 = out.smoothed_sum.into_scalar();
        let nll: f64 = out.nll_sum.into_scalar();
        assert!((ce - nll).abs() < 1e-6);
        let want = -(2.0f64 - (1f64.exp() + 2f64.exp() + 0.5f64.exp()).ln())
            - (0.2f64 - (0.1f64.exp() + 3f64.exp() + 0.2f64.exp()).ln());
        assert!((nll - want).abs() < 1e-5, "{nll} vs {want}");
        assert_eq!(out.correct.into_scalar::<i64>(), 1);
    }

    /// The distillation objective against an independent float64 computation by hand: padding rows,
    /// T ∈ {1, 2}, β ∈ {0, 0.5, 1}, uniform smoothing α = 0.1.
    #[test]
    fn distillation_objective_matches_float64_by_hand() {
        let device = Device::flex();
        let (b, t, k) = (2usize, 3usize, 5usize);
        let student: Vec<f64> = (0..b * t * k)
            .map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.4)
            .collect();
        let teacher: Vec<f64> = (0..b * t * k)
            .map(|i| ((i * 53 % 13) as f64 - 6.0) * 0.5)
            .collect();
        let targets: Vec<i64> = vec![3, 1, 0, 4, 2, 0]; // 0 = <pad>: rows 2 and 5 do not count
        let alpha = 0.1;
        let to3 = |v: &[f64]| {
            Tensor::<3>::from_data(
                TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), [b, t, k]),
                &device,
            )
        };
        let log_softmax64 = |row: &[f64], temp: f64| -> Vec<f64> {
            let z: Vec<f64> = row.iter().map(|x| x / temp).collect();
            let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + z.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
            z.iter().map(|x| x - lse).collect()
        };
        for temp in [1.0, 2.0] {
            for beta in [0.0, 0.5, 1.0] {
                let (mut ce, mut kl) = (0.0, 0.0);
                for row in 0..b * t {
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
                let tgt =
                    Tensor::<2, Int>::from_data(TensorData::new(targets.clone(), [b, t]), &device);
                let loss = label_smoothed_loss(
                    to3(&student),
                    tgt.clone(),
                    alpha,
                    SmoothingVariant::Uniform,
                    0,
                );
                let kl_sum = distillation_kl(to3(&student), to3(&teacher), tgt, temp, 0);
                assert!(
                    close(kl_sum.clone().into_scalar::<f64>(), kl, 1e-5),
                    "T = {temp}: kl"
                );
                let got = distillation_objective(loss.smoothed_sum, kl_sum, beta, temp)
                    .into_scalar::<f64>();
                assert!(
                    close(got, want, 1e-5),
                    "T = {temp}, β = {beta}: {got} vs {want}"
                );
            }
        }
        // Identical logits: no divergence at any temperature.
        let tgt = Tensor::<2, Int>::from_data(TensorData::new(targets, [b, t]), &device);
        let zero = distillation_kl(to3(&student), to3(&student), tgt, 2.0, 0).into_scalar::<f64>();
        assert!(zero.abs() < 1e-6, "{zero}");
    }
}
