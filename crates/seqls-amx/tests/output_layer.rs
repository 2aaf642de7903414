//! The output layer taken 32 rows at a time ([`Amx::output_layer`]) against the same step as three
//! whole products ([`Amx::product_into`]): the same logits reach the loss, and the states' and the
//! weight's gradients are equal bit for bit, tied and untied, for sizes that fill no block evenly.
//!
//! Skipped with a notice on a CPU without AMX, unless `SEQLS_REQUIRE_AMX=1` (CI's machines have it).

use std::sync::Mutex;

mod common;

use common::amx;
use seqls_amx::{Amx, Initial, PackedOutput, View};

/// Deterministic values in about [-1, 1].
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A stand-in loss that reads the whole row: the gradient of `Σ softmax(z)·c` for a fixed `c`,
/// and the row's largest logit as its value.
fn loss_row(z: &[f32], g: &mut [f32]) -> f32 {
    let max = z.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let sum: f32 = z.iter().map(|&x| (x - max).exp()).sum();
    for (i, (g, &x)) in g.iter_mut().zip(z).enumerate() {
        *g = (x - max).exp() / sum * ((i % 7) as f32 - 3.0);
    }
    max
}

/// `a·b` by the plain product (`a` `[m, k]`, `b` `[k, n]`).
fn product(amx: Amx, (m, n, k): (usize, usize, usize), a: View, b: View) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    // SAFETY: the views address `[m, k]` and `[k, n]` values; `out` holds `[m, n]`.
    unsafe { amx.product_into(m, n, k, (out.as_mut_ptr(), n), Initial::Zero, a, b, true) };
    out
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

fn check(amx: Amx, n: usize, d: usize, vocab: usize, tied: bool) {
    let states = values(n * d, 1 + n as u64);
    let weight = values(d * vocab, 2 + vocab as u64);
    let (w, w_t) = if tied {
        (View::transposed(&weight, d), View::rows(&weight, d))
    } else {
        (View::rows(&weight, vocab), View::transposed(&weight, vocab))
    };
    // The three products.
    let logits = product(amx, (n, vocab, d), View::rows(&states, d), w);
    let mut gradient = vec![0f32; n * vocab];
    let expected_values: Vec<f32> = (0..n)
        .map(|r| {
            let row = r * vocab..(r + 1) * vocab;
            loss_row(&logits[row.clone()], &mut gradient[row])
        })
        .collect();
    let expected_states = product(amx, (n, d, vocab), View::rows(&gradient, vocab), w_t);
    let expected_weight = if tied {
        let g_t = View::transposed(&gradient, vocab);
        product(amx, (vocab, d, n), g_t, View::rows(&states, d))
    } else {
        let h_t = View::transposed(&states, d);
        product(amx, (d, vocab, n), h_t, View::rows(&gradient, vocab))
    };

    // SAFETY: `weight` holds `d·V` values; `Amx` proves the features.
    let packed = unsafe { PackedOutput::pack(&weight, d, vocab, tied) };
    assert_eq!((packed.d(), packed.vocab()), (d, vocab));
    let mut per_row = vec![0f32; n];
    let mut states_gradient = vec![f32::NAN; n * d];
    let seen = Mutex::new(Vec::new());
    let weight_gradient = amx.output_layer(
        &packed,
        &states,
        &mut per_row,
        |first, z, g, out| {
            assert_eq!(z.len(), out.len() * vocab);
            assert_eq!(z, &logits[first * vocab..(first + out.len()) * vocab]);
            for (r, value) in out.iter_mut().enumerate() {
                let row = r * vocab..(r + 1) * vocab;
                *value = loss_row(&z[row.clone()], &mut g[row]);
            }
            seen.lock().unwrap().push((first, out.len()));
        },
        &mut states_gradient,
    );
    let mut seen = seen.into_inner().unwrap();
    seen.sort();
    let blocks: Vec<_> = (0..n)
        .step_by(32)
        .map(|first| (first, 32.min(n - first)))
        .collect();
    assert_eq!(seen, blocks, "every row once, in blocks of 32");
    let case = format!("n {n} d {d} V {vocab} tied {tied}");
    assert_eq!(bits(&per_row), bits(&expected_values), "{case}");
    assert_eq!(bits(&states_gradient), bits(&expected_states), "{case}");
    assert_eq!(bits(&weight_gradient), bits(&expected_weight), "{case}");
}

#[test]
fn the_output_layer_by_blocks_equals_the_three_products() {
    let Some(amx) = amx() else { return };
    for tied in [false, true] {
        for (n, d, vocab) in [(1, 32, 32), (45, 48, 70), (64, 64, 300), (97, 40, 129)] {
            check(amx, n, d, vocab, tied);
        }
    }
}

#[test]
fn no_rows_give_a_zero_weight_gradient() {
    let Some(amx) = amx() else { return };
    let weight = values(32 * 40, 3);
    // SAFETY: `weight` holds `d·V` values; `Amx` proves the features.
    let packed = unsafe { PackedOutput::pack(&weight, 32, 40, false) };
    let mut per_row: Vec<f32> = Vec::new();
    let gradient = amx.output_layer(&packed, &[], &mut per_row, |_, _, _, _| {}, &mut []);
    assert_eq!(gradient, vec![0.0; 32 * 40]);
}
