//! The GPU path (`--device wgpu`, burn-wgpu) against the CPU, on a tiny model: the same training
//! losses, the same gradients, the same decoding, cached = cache-free decoding, weights that move
//! between the devices, and resume. Built only with `--features wgpu`
//! (`cargo test --release -p seqls-cli --features wgpu --test wgpu`); any Vulkan or Metal device does,
//! Mesa's lavapipe (a CPU Vulkan device) included, which is what `.ci/run` uses. On the CPU the model
//! runs hand-written host operations; on any other device burn's composed ones, so this is the only
//! test of those.
#![cfg(feature = "wgpu")]

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, DeviceKind, Tensor};
use common::{ok, seqls};
use seqls_data::tokenizer::PAD;
use seqls_data::{Batch, Example};
use seqls_model::tensors::BatchTensors;
use seqls_model::{ModelConfig, Smoothing, SmoothingVariant, Transformer, training_objective};
use std::path::Path;

const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tiny-wgpu.toml");

fn wgpu() -> Device {
    Device::wgpu(DeviceKind::DefaultDevice)
}

/// The per-update training losses of a run's log (`log_every = 1`).
fn train_losses(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["kind"] == "train").then(|| v["loss"].as_f64().unwrap())
        })
        .collect()
}

fn train(dir: &Path, name: &str, device: &str, steps: &str, resume: bool) -> std::path::PathBuf {
    let run = dir.join(name);
    let mut args = vec![
        "train",
        "--config",
        CONFIG,
        "--alpha",
        "0.1",
        "--run-dir",
        run.to_str().unwrap(),
        "--device",
        device,
        "--threads",
        "1",
        "--max-steps",
        steps,
    ];
    if resume {
        args.push("--resume");
    }
    ok(seqls(&args));
    run
}

/// `decode --format jsonl` of `src` with `run` on `device`: per sentence the best hypothesis's
/// tokens and token log-probabilities.
fn decode(run: &Path, src: &Path, device: &str) -> Vec<(Vec<String>, Vec<f64>)> {
    let out = ok(seqls(&[
        "decode",
        "--model",
        run.to_str().unwrap(),
        "--input",
        src.to_str().unwrap(),
        "--beam",
        "4",
        "--format",
        "jsonl",
        "--device",
        device,
        "--threads",
        "1",
    ]));
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let best = &v["hypotheses"][0];
            let tokens = best["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect();
            let lps = best["token_logprobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            (tokens, lps)
        })
        .collect()
}

/// The same best hypotheses with token log-probabilities within 1e-3; prints the largest difference.
fn assert_same_decoding(a: &[(Vec<String>, Vec<f64>)], b: &[(Vec<String>, Vec<f64>)], what: &str) {
    assert_eq!(a.len(), b.len());
    let mut worst = 0f64;
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.0, y.0, "{what}: sentence {i}");
        for (p, q) in x.1.iter().zip(&y.1) {
            assert!((p - q).abs() < 1e-3, "{what}: sentence {i}: {p} vs {q}");
            worst = worst.max((p - q).abs());
        }
    }
    eprintln!(
        "wgpu: {what}: {} sentences, the same beam-4 outputs, token log-probabilities within {worst:.1e}",
        a.len()
    );
}

/// Two loss curves within 2e-3 relative at every update; prints the largest difference.
fn assert_same_losses(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    let mut worst = 0f64;
    for (u, (x, y)) in a.iter().zip(b).enumerate() {
        let relative = (x - y).abs() / x.abs();
        assert!(relative <= 2e-3, "{what}, update {}: {x} vs {y}", u + 1);
        worst = worst.max(relative);
    }
    eprintln!(
        "wgpu: {what}: {} updates, losses within {worst:.1e} relative (first {:.6}, last {:.6})",
        a.len(),
        a[0],
        a[a.len() - 1]
    );
}

#[test]
fn training_decoding_and_resume_on_wgpu_match_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    ok(seqls(&[
        "corpus",
        "synth",
        "--pairs",
        "300",
        "--seed",
        "1",
        "--out",
        dir.path().join("corpus").to_str().unwrap(),
    ]));
    let src = dir.path().join("src.txt");
    let test = std::fs::read_to_string(dir.path().join("corpus/test.src")).unwrap();
    std::fs::write(
        &src,
        test.lines().take(12).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();

    // The same config and seed: per-update losses agree to float rounding.
    let cpu = train(dir.path(), "cpu", "cpu", "24", false);
    let gpu = train(dir.path(), "gpu", "wgpu", "24", false);
    let (a, b) = (train_losses(&cpu), train_losses(&gpu));
    assert_eq!(a.len(), 24, "{a:?}");
    assert_same_losses(&a, &b, "training on wgpu against the CPU");

    // The same weights decoded on both devices; each run's weights decoded on the other device.
    let on_cpu = decode(&cpu, &src, "cpu");
    assert_same_decoding(
        &on_cpu,
        &decode(&cpu, &src, "wgpu"),
        "CPU-trained weights on wgpu",
    );
    assert_same_decoding(
        &decode(&gpu, &src, "wgpu"),
        &decode(&gpu, &src, "cpu"),
        "wgpu-trained weights on the CPU",
    );

    // Cached decoding = cache-free: what the beam search's incremental decoder gave each token on
    // wgpu is what a teacher-forced pass over the whole hypothesis gives it (`seqls score`).
    let on_gpu = decode(&gpu, &src, "wgpu");
    let hyps = dir.path().join("hyps.tok");
    let lines: Vec<String> = on_gpu.iter().map(|(tokens, _)| tokens.join(" ")).collect();
    std::fs::write(&hyps, lines.join("\n") + "\n").unwrap();
    let scored = ok(seqls(&[
        "score",
        "--model",
        gpu.to_str().unwrap(),
        "--src",
        src.to_str().unwrap(),
        "--hyp",
        hyps.to_str().unwrap(),
        "--hyp-tokens",
        "--per-token",
        "--device",
        "wgpu",
        "--threads",
        "1",
    ]));
    let mut worst = 0f64;
    for (i, (line, (_, cached))) in scored.lines().zip(&on_gpu).enumerate() {
        let per_token: Vec<f64> = line
            .split('\t')
            .nth(3)
            .unwrap()
            .split(' ')
            .map(|x| x.parse().unwrap())
            .collect();
        assert_eq!(per_token.len(), cached.len(), "sentence {i}");
        for (p, q) in per_token.iter().zip(cached) {
            assert!(
                (p - q).abs() < 1e-3,
                "cached vs cache-free on wgpu, sentence {i}: {q} vs {p}"
            );
            worst = worst.max((p - q).abs());
        }
    }
    eprintln!("wgpu: cached decoding against a teacher-forced pass on wgpu: within {worst:.1e}");

    // Resume on wgpu continues the run: 24 then 8 more updates give the losses of 32 at once
    // (within the same tolerance: the devices round differently).
    let resumed = train(dir.path(), "gpu", "wgpu", "32", true);
    let straight = train(dir.path(), "cpu32", "cpu", "32", false);
    let (r, s) = (train_losses(&resumed), train_losses(&straight));
    assert_eq!(r.len(), 32, "{r:?}");
    assert_same_losses(
        &r,
        &s,
        "24 updates on wgpu resumed to 32, against 32 on the CPU",
    );
}

/// Every parameter's gradient of the label-smoothed objective of one batch.
fn gradients(model: &Transformer, batch: &Batch, device: &Device) -> Vec<f32> {
    let tensors = BatchTensors::new(batch, device);
    let logits = model.forward(tensors.src, tensors.tgt_in, PAD).logits;
    let smoothing = Smoothing {
        alpha: 0.1,
        variant: SmoothingVariant::Uniform,
        pad_id: PAD,
    };
    let (_, objective) = training_objective(logits, &batch.tgt_out, smoothing, None, 1.0);
    let grads = GradientsParams::from_grads(objective.backward(), model);
    struct Collect<'a>(&'a GradientsParams, Vec<f32>);
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let g = self
                .0
                .get::<D>(param.id)
                .expect("every parameter has a gradient");
            self.1.extend(g.into_data().try_to_vec::<f32>().unwrap());
        }
    }
    let mut collect = Collect(&grads, Vec::new());
    model.visit(&mut collect);
    collect.1
}

#[test]
fn one_steps_gradients_on_wgpu_match_the_cpu() {
    let cpu = Device::flex().autodiff();
    cpu.seed(5);
    let config = ModelConfig {
        d_model: 16,
        heads: 2,
        encoder_layers: 2,
        decoder_layers: 2,
        d_ff: 32,
        dropout: 0.0,
        max_len: 32,
        pre_norm: true,
        tie_output: true,
        share_embeddings: true,
    };
    let model = config.init(41, &cpu);
    let examples: Vec<Example> = (0..4u32)
        .map(|i| Example {
            index: i as usize,
            src: (0..5 + i).map(|t| 4 + (t * 7 + i) % 37).collect(),
            tgt: (0..3 + 2 * i).map(|t| 4 + (t * 5 + 3 * i) % 37).collect(),
        })
        .collect();
    let batch = Batch::from_examples(&examples.iter().collect::<Vec<_>>());
    let on_cpu = gradients(&model, &batch, &cpu);
    let gpu = wgpu().autodiff();
    let on_gpu = gradients(&model.clone().fork(&gpu), &batch, &gpu);
    assert_eq!(on_cpu.len(), on_gpu.len());
    let scale = on_cpu.iter().fold(0f32, |m, g| m.max(g.abs()));
    let worst = on_cpu
        .iter()
        .zip(&on_gpu)
        .map(|(a, b)| (a - b).abs() / (a.abs() + 1e-3 * scale))
        .fold(0f32, f32::max);
    eprintln!(
        "wgpu: {} gradient values, worst relative difference {worst:.2e}",
        on_cpu.len()
    );
    assert!(worst < 1e-3, "worst relative gradient difference {worst}");
}

/// `seqls bench` runs on wgpu (its figures on a software device mean nothing; the command must run).
#[test]
fn bench_runs_on_wgpu() {
    for (what, extra) in [
        ("train", ["--batch", "8", "--rounds", "1"].as_slice()),
        (
            "decode",
            ["--batch", "4", "--steps", "5", "--rounds", "1"].as_slice(),
        ),
    ] {
        let mut args = vec![
            "bench", what, "--device", "wgpu", "--shape", "XS", "--runs", "1",
        ];
        args.extend(extra);
        let out = ok(seqls(&args));
        assert!(out.contains("seqls"), "{out}");
        eprintln!(
            "wgpu: seqls bench {what} --shape XS: {}",
            out.lines().last().unwrap_or("")
        );
    }
}
