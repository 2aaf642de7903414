//! `seqls export RUN --format safetensors`: a run's weights under fairseq's transformer parameter names,
//! in PyTorch's layout, for use outside seqls.
//!
//! Written into the output directory: `model.safetensors` (float32), `config.json` (the model's sizes,
//! vocabulary and special ids, how embeddings are shared) and `tokenizer.json` (the run's tokenizer).
//! Names follow fairseq's `TransformerModel` (`encoder.layers.0.self_attn.q_proj.weight`,
//! `decoder.layers.0.encoder_attn_layer_norm.bias`, `decoder.output_projection.weight`, …). Linear
//! weights are stored `[out, in]` as `torch.nn.Linear` keeps them (burn keeps `[in, out]`), layer norms
//! as `weight`/`bias`. A shared source/target embedding is stored once, as
//! `encoder.embed_tokens.weight`; a tied output projection is not stored (it is that embedding), as
//! `config.json` says. The sinusoidal positions are computed, not stored; the embeddings are scaled by
//! `sqrt(d_model)` in the forward pass.

use crate::error::{At, RunError};
use crate::run::{RunDir, weights_bytes};
use burn::tensor::{Bytes, Device};
use safetensors::tensor::{Dtype, TensorView};
use std::path::{Path, PathBuf};

/// The PyTorch (fairseq) name of a burn parameter name, and whether it is a linear weight to transpose.
fn pytorch_name(burn: &str) -> Option<(String, bool)> {
    let parts: Vec<&str> = burn.split('.').collect();
    fn leaf(p: &str) -> &str {
        match p {
            "gamma" => "weight",
            "beta" => "bias",
            other => other,
        }
    }
    let attention = |p: &str| match p {
        "query" => Some("q_proj"),
        "key" => Some("k_proj"),
        "value" => Some("v_proj"),
        "output" => Some("out_proj"),
        _ => None,
    };
    Some(match parts.as_slice() {
        ["src_embedding", "weight"] => ("encoder.embed_tokens.weight".into(), false),
        ["tgt_embedding", "weight"] => ("decoder.embed_tokens.weight".into(), false),
        ["encoder_norm", p] => (format!("encoder.layer_norm.{}", leaf(p)), false),
        ["decoder_norm", p] => (format!("decoder.layer_norm.{}", leaf(p)), false),
        ["output", p] => (format!("decoder.output_projection.{p}"), *p == "weight"),
        [side @ ("encoder" | "decoder"), layer, module, rest @ ..] => {
            let prefix = format!("{side}.layers.{layer}");
            match (*module, rest) {
                ("self_attention", [proj, p]) => (
                    format!("{prefix}.self_attn.{}.{p}", attention(proj)?),
                    *p == "weight",
                ),
                ("cross_attention", [proj, p]) => (
                    format!("{prefix}.encoder_attn.{}.{p}", attention(proj)?),
                    *p == "weight",
                ),
                ("feed_forward", [linear, p]) => {
                    let fc = match *linear {
                        "inner" => "fc1",
                        "outer" => "fc2",
                        _ => return None,
                    };
                    (format!("{prefix}.{fc}.{p}"), *p == "weight")
                }
                ("attention_norm" | "self_attention_norm", [p]) => {
                    (format!("{prefix}.self_attn_layer_norm.{}", leaf(p)), false)
                }
                ("cross_attention_norm", [p]) => (
                    format!("{prefix}.encoder_attn_layer_norm.{}", leaf(p)),
                    false,
                ),
                ("feed_forward_norm", [p]) => {
                    (format!("{prefix}.final_layer_norm.{}", leaf(p)), false)
                }
                _ => return None,
            }
        }
        _ => return None,
    })
}

/// `[rows, cols]` float32 little-endian bytes transposed to `[cols, rows]`.
fn transpose(bytes: &[u8], rows: usize, cols: usize) -> Vec<u8> {
    let mut out = vec![0u8; bytes.len()];
    for r in 0..rows {
        for c in 0..cols {
            let from = 4 * (r * cols + c);
            let to = 4 * (c * rows + r);
            out[to..to + 4].copy_from_slice(&bytes[from..from + 4]);
        }
    }
    out
}

/// Writes `model.safetensors`, `config.json` and `tokenizer.json` of `run` into `out`; returns the
/// paths written.
pub fn export_safetensors(
    run: &RunDir,
    out: &Path,
    device: &Device,
) -> Result<Vec<PathBuf>, crate::error::RunError> {
    let (config, tokenizer, model) = run.load_model(device)?;
    let bytes = weights_bytes(&model)?;
    let reader =
        burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes)).at("reading the weights")?;
    let tensors = reader.into_tensors().at("reading the weights")?;
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for t in tensors {
        let (name, dtype, shape, _, data) = t.into_parts().at("reading the weights")?;
        if dtype != burn::tensor::DType::F32 {
            return Err(RunError::Export {
                name,
                problem: format!("expected float32 weights, found {dtype:?}"),
            });
        }
        let Some((torch, linear)) = pytorch_name(&name) else {
            return Err(RunError::Export {
                name,
                problem: "no PyTorch name for this parameter".into(),
            });
        };
        let dims: Vec<usize> = shape.to_vec();
        let (dims, data) = match (linear, dims.as_slice()) {
            (true, [rows, cols]) => (vec![*cols, *rows], transpose(&data, *rows, *cols)),
            _ => (dims, data.to_vec()),
        };
        named.push((torch, dims, data));
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let views: Vec<(String, TensorView)> = named
        .iter()
        .map(|(n, dims, data)| {
            TensorView::new(Dtype::F32, dims.clone(), data)
                .map(|v| (n.clone(), v))
                .map_err(|e| RunError::Export {
                    name: n.clone(),
                    problem: e.to_string(),
                })
        })
        .collect::<Result<_, _>>()?;
    let metadata = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    let safetensors =
        safetensors::tensor::serialize(views, Some(metadata)).at("writing safetensors")?;
    let m = &config.model;
    let description = serde_json::json!({
        "architecture": "transformer (encoder-decoder, fairseq parameter names)",
        "d_model": m.d_model,
        "attention_heads": m.heads,
        "encoder_layers": m.encoder_layers,
        "decoder_layers": m.decoder_layers,
        "ffn_dim": m.d_ff,
        "activation": "relu",
        "dropout": m.dropout,
        "max_positions": m.max_len,
        "positions": "sinusoidal (Vaswani et al. 2017), not stored",
        "embed_scale": (m.d_model as f64).sqrt(),
        "normalize_before": m.pre_norm,
        "share_all_embeddings": m.share_embeddings,
        "share_decoder_input_output_embed": m.tie_output,
        "vocab_size": tokenizer.vocab_size(),
        "pad_token_id": seqls_data::tokenizer::PAD,
        "bos_token_id": seqls_data::tokenizer::BOS,
        "eos_token_id": seqls_data::tokenizer::EOS,
        "unk_token_id": seqls_data::tokenizer::UNK,
        "label_smoothing": config.train.alpha,
        "linear_weight_layout": "[out_features, in_features] (torch.nn.Linear)",
    });
    std::fs::create_dir_all(out).at(out.display())?;
    let files = [
        (out.join("model.safetensors"), safetensors),
        (
            out.join("config.json"),
            serde_json::to_string_pretty(&description)?.into_bytes(),
        ),
        (
            out.join("tokenizer.json"),
            std::fs::read(run.tokenizer()).at(run.tokenizer().display())?,
        ),
    ];
    for (path, bytes) in &files {
        seqls_data::write::write_atomic(path, bytes)?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_gets_a_fairseq_name() {
        for (burn, torch, linear) in [
            ("src_embedding.weight", "encoder.embed_tokens.weight", false),
            (
                "encoder.2.self_attention.query.weight",
                "encoder.layers.2.self_attn.q_proj.weight",
                true,
            ),
            (
                "encoder.0.attention_norm.gamma",
                "encoder.layers.0.self_attn_layer_norm.weight",
                false,
            ),
            (
                "decoder.1.cross_attention.output.bias",
                "decoder.layers.1.encoder_attn.out_proj.bias",
                false,
            ),
            (
                "decoder.0.cross_attention_norm.beta",
                "decoder.layers.0.encoder_attn_layer_norm.bias",
                false,
            ),
            (
                "decoder.0.feed_forward.outer.weight",
                "decoder.layers.0.fc2.weight",
                true,
            ),
            (
                "decoder.0.feed_forward_norm.gamma",
                "decoder.layers.0.final_layer_norm.weight",
                false,
            ),
            ("decoder_norm.beta", "decoder.layer_norm.bias", false),
            ("output.weight", "decoder.output_projection.weight", true),
        ] {
            assert_eq!(
                pytorch_name(burn),
                Some((torch.to_string(), linear)),
                "{burn}"
            );
        }
        assert_eq!(pytorch_name("decoder.0.mystery.weight"), None);
    }

    #[test]
    fn transpose_moves_rows_to_columns() {
        let m: Vec<u8> = [1f32, 2., 3., 4., 5., 6.]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let t: Vec<f32> = transpose(&m, 2, 3)
            .chunks(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(t, [1., 4., 2., 5., 3., 6.]);
    }
}
