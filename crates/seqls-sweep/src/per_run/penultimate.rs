//! The penultimate-layer picture of Müller, Kornblith & Hinton (2019, Figure 1), for translation.
//!
//! Pick three target tokens `k1, k2, k3` and let `w_k` be their rows of the output projection (columns
//! of the `[d, V]` matrix). The plane through `w_k1, w_k2, w_k3` has the orthonormal basis
//! `e1 = u / |u|`, `e2 = (v − (v·e1) e1) / |…|` with `u = w_k2 − w_k1`, `v = w_k3 − w_k1`. Run the
//! decoder teacher-forced on reference translations, take the final hidden state `h` (before the
//! output projection) at every position whose reference token is one of the three, and plot
//! `((h − w_k1)·e1, (h − w_k1)·e2)`. Without smoothing the clusters are spread out; label smoothing
//! pulls each class into a tight cluster at equal distances from the other classes' templates.

use burn::tensor::Device;
use seqls_data::tokenizer::PAD;
use seqls_data::{Batch, Example, SubwordTokenizer};
use seqls_model::Transformer;
use seqls_model::tensors::BatchTensors;

/// The three most frequent word tokens (a `▁` followed by letters only) among the target tokens of
/// `examples`, most frequent first.
pub fn frequent_word_tokens(examples: &[Example], tokenizer: &SubwordTokenizer) -> Vec<u32> {
    let mut counts = std::collections::HashMap::<u32, usize>::new();
    for e in examples {
        for &t in &e.tgt {
            *counts.entry(t).or_default() += 1;
        }
    }
    let mut ranked: Vec<(u32, usize)> = counts
        .into_iter()
        .filter(|(t, _)| {
            tokenizer.id_to_token(*t).is_some_and(|s| {
                s.strip_prefix('▁')
                    .is_some_and(|w| !w.is_empty() && w.chars().all(char::is_alphabetic))
            })
        })
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.into_iter().take(3).map(|(t, _)| t).collect()
}

/// The projection of the chosen tokens' hidden states and of their templates.
pub struct Projection {
    /// `(x, y, class)` per hidden state (class = index into the tokens), at most `per_class` each.
    pub points: Vec<(f64, f64, usize)>,
    /// The templates `w_k1, w_k2, w_k3` in the same coordinates: `(0, 0)`, `(|u|, 0)`, `(v·e1, v·e2)`.
    pub templates: Vec<(f64, f64)>,
}

/// Projects hidden states onto the plane of the three tokens' templates (see the module docs).
pub fn project(
    model: &Transformer,
    examples: &[Example],
    tokens: [u32; 3],
    per_class: usize,
    device: &Device,
) -> Projection {
    let matrix = model.output_matrix();
    let d = matrix.dims()[0];
    let w: Vec<f32> = matrix
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        // Cannot fail: the hidden states of an f32 model are f32.
        .expect("f32");
    let v = w.len() / d;
    let column = |k: u32| -> Vec<f64> { (0..d).map(|i| w[i * v + k as usize] as f64).collect() };
    let (w1, w2, w3) = (column(tokens[0]), column(tokens[1]), column(tokens[2]));
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let sub = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<f64>>();
    let u = sub(&w2, &w1);
    let e1: Vec<f64> = u.iter().map(|x| x / dot(&u, &u).sqrt()).collect();
    let vv = sub(&w3, &w1);
    let along = dot(&vv, &e1);
    let r: Vec<f64> = vv.iter().zip(&e1).map(|(x, e)| x - along * e).collect();
    let e2: Vec<f64> = r.iter().map(|x| x / dot(&r, &r).sqrt()).collect();

    let mut taken = [0usize; 3];
    let mut points = Vec::new();
    for chunk in examples.chunks(64) {
        if taken.iter().all(|&n| n >= per_class) {
            break;
        }
        let rows: Vec<&Example> = chunk.iter().collect();
        let batch = Batch::from_examples(&rows);
        let tensors = BatchTensors::new(&batch, device);
        let hidden: Vec<f32> = model
            .forward(tensors.src, tensors.tgt_in, PAD)
            .hidden
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            // Cannot fail: the hidden states of an f32 model are f32.
            .expect("f32");
        for (i, &reference) in batch.tgt_out.iter().enumerate() {
            let Some(class) = tokens.iter().position(|&t| t == reference) else {
                continue;
            };
            if taken[class] >= per_class {
                continue;
            }
            taken[class] += 1;
            let h: Vec<f64> = hidden[i * d..(i + 1) * d]
                .iter()
                .map(|&x| x as f64)
                .collect();
            let centred = sub(&h, &w1);
            points.push((dot(&centred, &e1), dot(&centred, &e2), class));
        }
    }
    Projection {
        points,
        templates: vec![(0.0, 0.0), (dot(&u, &e1), 0.0), (along, dot(&vv, &e2))],
    }
}
