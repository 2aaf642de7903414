//! The CPU objective ([`HostOutput`]: the output projection, loss and their backward pass outside
//! autodiff) gives the same loss sums and the same gradient for every parameter as the tensor path
//! (the logits as a burn tensor, [`training_objective`] on them, autodiff through the projection),
//! with tied and untied output layers, padded targets, and with and without a teacher.

mod common;

use burn::optim::GradientsParams;
use burn::tensor::Device;
use common::gradients;
use seqls_data::tokenizer::PAD;
use seqls_model::tensors::int_tensor;
use seqls_model::{
    Distillation, HostOutput, ModelConfig, Smoothing, SmoothingVariant, training_objective,
};

/// Every parameter's gradient in `grads`, in the model's parameter order.
#[test]
fn host_objective_equals_the_tensor_path() {
    let device = Device::flex().autodiff();
    let (vocab, b, s, t) = (29usize, 3usize, 5usize, 4usize);
    let src: Vec<u32> = (0..b * s)
        .map(|i| (i * 7 % (vocab - 4) + 4) as u32)
        .collect();
    let tgt_in: Vec<u32> = (0..b * t)
        .map(|i| (i * 5 % (vocab - 4) + 4) as u32)
        .collect();
    // Row 2 ends in padding: those positions must contribute nothing.
    let tgt_out: Vec<u32> = (0..b * t)
        .map(|i| {
            if i >= 2 * t + 2 {
                PAD
            } else {
                (i * 11 % (vocab - 4) + 4) as u32
            }
        })
        .collect();
    let smoothing = Smoothing {
        alpha: 0.1,
        variant: SmoothingVariant::Uniform,
        pad_id: PAD,
    };
    let denominator = 9.0;
    for tie_output in [true, false] {
        let config = ModelConfig {
            d_model: 16,
            heads: 2,
            encoder_layers: 1,
            decoder_layers: 2,
            d_ff: 24,
            dropout: 0.0,
            max_len: 16,
            tie_output,
            ..ModelConfig::default()
        };
        device.seed(3);
        let model = config.init(vocab, &device);
        let teacher = config.init(vocab, &device.clone().inner());
        for with_teacher in [false, true] {
            let inputs = || {
                (
                    int_tensor(&src, [b, s], &device),
                    int_tensor(&tgt_in, [b, t], &device),
                )
            };
            let teacher_logits = || {
                with_teacher.then(|| {
                    let inner = device.clone().inner();
                    let logits = teacher
                        .forward(
                            int_tensor(&src, [b, s], &inner),
                            int_tensor(&tgt_in, [b, t], &inner),
                            PAD,
                        )
                        .logits;
                    Distillation {
                        teacher_logits: logits,
                        temperature: 2.0,
                        weight: 0.5,
                    }
                })
            };

            let (src_t, tgt_t) = inputs();
            let logits = model.forward(src_t, tgt_t, PAD).logits;
            let (want_sums, surrogate) =
                training_objective(logits, &tgt_out, smoothing, teacher_logits(), denominator);
            let want = gradients(
                &model,
                &GradientsParams::from_grads(surrogate.backward(), &model),
            );

            let output = HostOutput::for_device(&model, &device).expect("the CPU has a host path");
            let (src_t, tgt_t) = inputs();
            let hidden = model.decoder_states(src_t, tgt_t, PAD);
            let host = output.objective(hidden, &tgt_out, smoothing, teacher_logits(), denominator);
            let mut grads = GradientsParams::from_grads(host.surrogate.backward(), &model);
            output.add_gradient(&mut grads, host.weight_gradient);
            let got = gradients(&model, &grads);

            let case = format!("tied {tie_output}, teacher {with_teacher}");
            assert_eq!(host.sums.tokens, want_sums.tokens, "{case}");
            assert!(
                (host.sums.smoothed - want_sums.smoothed).abs() < 1e-4 * want_sums.smoothed,
                "{case}: {} vs {}",
                host.sums.smoothed,
                want_sums.smoothed
            );
            assert!(
                (host.sums.distill_kl - want_sums.distill_kl).abs() < 1e-4,
                "{case}"
            );
            assert_eq!(got.len(), want.len());
            for (p, (g, w)) in got.iter().zip(&want).enumerate() {
                let scale = w.iter().fold(0f32, |m, x| m.max(x.abs()));
                assert!(scale > 0.0, "{case}: parameter {p} has no gradient");
                let worst = g.iter().zip(w).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    worst <= 1e-4 * scale,
                    "{case}: parameter {p} differs by {worst} (scale {scale})"
                );
            }
        }
    }
}
