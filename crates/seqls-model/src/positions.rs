//! Sinusoidal position encodings (Vaswani et al. 2017): `PE(p, 2i) = sin(p / 10000^(2i/d))`,
//! `PE(p, 2i+1) = cos(p / 10000^(2i/d))`.

use burn::tensor::{Device, Tensor, TensorData};

/// Sinusoidal position encodings for positions `start..start + len`, `[len, d]` row-major:
/// `sin(p / 10000^(2i/d))` at column `2i`, `cos(…)` at `2i + 1`.
pub fn position_values(start: usize, len: usize, d: usize) -> Vec<f32> {
    let mut values = Vec::with_capacity(len * d);
    for p in start..start + len {
        for i in 0..d / 2 {
            let angle = p as f64 / 10000f64.powf(2.0 * i as f64 / d as f64);
            values.push(angle.sin() as f32);
            values.push(angle.cos() as f32);
        }
    }
    values
}

/// [`position_values`] as a tensor `[len, d]`.
pub fn positions(start: usize, len: usize, d: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(position_values(start, len, d), [len, d]),
        device,
    )
}
