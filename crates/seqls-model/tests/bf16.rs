//! One training step's loss and gradients with the matrix products in bf16 (AMX tiles) against f32,
//! on the CPU training path (the hand-written operations and the host objective): every
//! parameter's gradient within 10% of f32 in relative L2 norm (measured here: 1.3–7.9%), the loss
//! within 0.5% (measured: 0.01%), and bf16 deterministic. bf16 keeps 8 significant bits (a relative
//! rounding error up to 2⁻⁸ ≈ 0.4% per operand), compounded over the layers of the forward and
//! backward passes, at random initialisation where gradients are least smooth.
//!
//! Its own test binary: the precision is a setting of the whole process. Skipped with a notice
//! without AMX, unless `SEQLS_REQUIRE_AMX=1`.

mod common;

use burn::optim::GradientsParams;
use burn::tensor::Device;
use common::gradients;
use seqls_data::tokenizer::PAD;
use seqls_model::tensors::int_tensor;
use seqls_model::{
    HostOutput, ModelConfig, Precision, ProductEngine, Smoothing, SmoothingVariant, Transformer,
    use_precision,
};

/// The smoothed loss sum and every parameter's gradient of one batch, in the current precision.
fn step(model: &Transformer, device: &Device) -> (f64, Vec<Vec<f32>>) {
    let (vocab, b, s, t) = (101usize, 4usize, 12usize, 10usize);
    let src: Vec<u32> = (0..b * s)
        .map(|i| (i * 37 % (vocab - 4) + 4) as u32)
        .collect();
    let tgt_in: Vec<u32> = (0..b * t)
        .map(|i| (i * 53 % (vocab - 4) + 4) as u32)
        .collect();
    let tgt_out: Vec<u32> = (0..b * t)
        .map(|i| (i * 71 % (vocab - 4) + 4) as u32)
        .collect();
    let smoothing = Smoothing {
        alpha: 0.1,
        variant: SmoothingVariant::Uniform,
        pad_id: PAD,
    };
    let output = HostOutput::for_device(model, device).expect("the CPU has a host path");
    let hidden = model.decoder_states(
        int_tensor(&src, [b, s], device),
        int_tensor(&tgt_in, [b, t], device),
        PAD,
    );
    let host = output.objective(hidden, &tgt_out, smoothing, None, (b * t) as f64);
    let mut grads = GradientsParams::from_grads(host.surrogate.backward(), model);
    output.add_gradient(&mut grads, host.weight_gradient);
    (host.sums.smoothed, gradients(model, &grads))
}

/// The L2 norm below which a gradient counts as vanishing (the others here are 0.01–1.6).
const GRADIENT_FLOOR: f64 = 1e-3;

fn norm(x: impl Iterator<Item = f32>) -> f64 {
    x.map(|v| (v as f64) * (v as f64)).sum::<f64>().sqrt()
}

#[test]
fn a_bf16_step_is_close_to_f32_and_deterministic() {
    let device = Device::flex().autodiff();
    let config = ModelConfig {
        d_model: 64,
        heads: 4,
        encoder_layers: 1,
        decoder_layers: 2,
        d_ff: 128,
        dropout: 0.0,
        max_len: 32,
        ..ModelConfig::default()
    };
    device.seed(5);
    let model = config.init(101, &device);

    assert!(matches!(use_precision(Precision::F32), ProductEngine::F32));
    let (f32_loss, f32_grads) = step(&model, &device);
    match use_precision(Precision::Bf16) {
        ProductEngine::AmxBf16 => {}
        other if std::env::var("SEQLS_REQUIRE_AMX").as_deref() == Ok("1") => {
            panic!("SEQLS_REQUIRE_AMX=1 but {other}")
        }
        other => {
            eprintln!("skipped: {other}");
            return;
        }
    }
    let (bf16_loss, bf16_grads) = step(&model, &device);
    let (again_loss, again_grads) = step(&model, &device);
    use_precision(Precision::F32);

    assert_eq!(
        bf16_loss.to_bits(),
        again_loss.to_bits(),
        "bf16 is not deterministic"
    );
    assert_eq!(
        bf16_grads, again_grads,
        "bf16 gradients are not deterministic"
    );
    assert!(
        (bf16_loss - f32_loss).abs() <= 5e-3 * f32_loss,
        "loss: bf16 {bf16_loss} vs f32 {f32_loss}"
    );
    assert_eq!(bf16_grads.len(), f32_grads.len());
    let mut worst = 0f64;
    for (p, (g, w)) in bf16_grads.iter().zip(&f32_grads).enumerate() {
        let scale = norm(w.iter().copied());
        // The key projection's bias has no gradient in exact arithmetic (it adds the same amount
        // to every score of a softmax row): there both precisions give rounding noise, measured
        // against the floor instead of its own norm.
        let relative = norm(g.iter().zip(w).map(|(a, b)| a - b)) / scale.max(GRADIENT_FLOOR);
        assert!(
            relative <= 0.10,
            "parameter {p}: bf16 gradient {relative:.4} from f32 (relative L2)"
        );
        assert_ne!(g, w, "parameter {p}: bf16 changed nothing: did it run?");
        worst = worst.max(relative);
    }
    eprintln!(
        "loss bf16 {bf16_loss:.6} vs f32 {f32_loss:.6}; worst gradient relative L2 {worst:.4}"
    );
}
