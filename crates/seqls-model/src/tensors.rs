//! Token ids as tensors (padded rows, the tensors of a training [`Batch`]) and float tensors as
//! host values.

use burn::tensor::{Device, Int, Tensor, TensorData};
use seqls_data::Batch;
use seqls_data::tokenizer::PAD;

/// Whether `device` is the CPU backend (burn-flex), with or without autodiff: where the model runs its
/// hand-written operations instead of burn's tensor operations.
pub fn on_cpu(device: &Device) -> bool {
    device.clone().inner() == Device::flex()
}

/// Pads `rows` (token ids) to a `[rows, max_len]` tensor with `<pad>`.
pub fn padded_tensor(rows: &[Vec<u32>], device: &Device) -> Tensor<2, Int> {
    let len = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut data = vec![PAD as i64; rows.len() * len];
    for (r, row) in rows.iter().enumerate() {
        for (c, &t) in row.iter().enumerate() {
            data[r * len + c] = t as i64;
        }
    }
    Tensor::from_data(TensorData::new(data, [rows.len(), len]), device)
}

/// A row-major `u32` buffer as an Int tensor of `shape`.
pub fn int_tensor<const D: usize>(
    values: &[u32],
    shape: [usize; D],
    device: &Device,
) -> Tensor<D, Int> {
    let data: Vec<i64> = values.iter().map(|&v| v as i64).collect();
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// The values of a float tensor, row-major, in `f32` (read in place with [`f32_slice`]).
pub fn f32_data<const D: usize>(t: Tensor<D>) -> TensorData {
    t.into_data().convert::<f32>()
}

/// The values of [`f32_data`] without a copy.
pub fn f32_slice(data: &TensorData) -> &[f32] {
    // Cannot fail: `f32_data` converted to f32.
    data.as_slice::<f32>().expect("f32 data")
}

/// The values of a float tensor, row-major, as an owned `f32` vector.
pub fn f32_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    f32_data(t)
        .try_into_vec::<f32>()
        // Cannot fail: converted to f32.
        .expect("f32 data")
}

/// A padded [`Batch`] as tensors: `src` `[B, S]`, `tgt_in` and `tgt_out` `[B, T]`.
pub struct BatchTensors {
    pub src: Tensor<2, Int>,
    pub tgt_in: Tensor<2, Int>,
    pub tgt_out: Tensor<2, Int>,
}

impl BatchTensors {
    pub fn new(batch: &Batch, device: &Device) -> Self {
        BatchTensors {
            src: int_tensor(&batch.src, [batch.rows, batch.src_len], device),
            tgt_in: int_tensor(&batch.tgt_in, [batch.rows, batch.tgt_len], device),
            tgt_out: int_tensor(&batch.tgt_out, [batch.rows, batch.tgt_len], device),
        }
    }
}
