//! The label-smoothed loss and the distillation objective ([`seqls_model::loss`]) against golden
//! values from PyTorch and against float64 computations by hand.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use seqls_model::loss::*;
use serde_json::Value;
use std::path::PathBuf;

/// `$SEQLS_GOLDEN_DIR/label_smoothing.json`, else the project's copy in `testdata/golden`.
fn golden_path() -> PathBuf {
    let dir = std::env::var_os("SEQLS_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden"));
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
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
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
    let device = logits.device();
    // The smoothed target q written out per row, as the module documentation defines it.
    let ids: Vec<i64> = targets
        .clone()
        .into_data()
        .convert::<i64>()
        .try_into_vec()
        .unwrap();
    let (alpha, pad) = (ls.alpha, ls.pad_id as usize);
    let mut q = vec![0f32; b * t * k];
    for (row, &y) in ids.iter().enumerate() {
        let y = y as usize;
        for c in 0..k {
            q[row * k + c] = match ls.variant {
                SmoothingVariant::Uniform => {
                    (if c == y { 1.0 - alpha } else { 0.0 }) + alpha / k as f64
                }
                SmoothingVariant::Fairseq if c == y => 1.0 - alpha,
                SmoothingVariant::Fairseq => alpha / (k - 1) as f64,
                SmoothingVariant::Annotated if c == y => 1.0 - alpha,
                SmoothingVariant::Annotated if c == pad => 0.0,
                SmoothingVariant::Annotated => alpha / (k - 2) as f64,
            } as f32;
        }
    }
    let q = Tensor::<3>::from_data(TensorData::new(q, [b, t, k]), &device);
    let log_probs = log_softmax(logits.clone(), 2);
    let mask = targets
        .not_equal_elem(ls.pad_id as i64)
        .float()
        .reshape([b, t, 1]);
    let ce = ((q * log_probs).sum_dim(2).neg() * mask.clone()).sum();
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
                teacher_t.map(|t| Distillation {
                    teacher_logits: t,
                    temperature,
                    weight: beta,
                }),
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
