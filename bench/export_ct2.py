"""Converts `seqls export --format safetensors` output into a CTranslate2 model directory.

Usage: export_ct2.py EXPORT_DIR OUT_DIR

Written through the `ctranslate2` package's own spec API, rather than writing CTranslate2's binary
format by hand: the format is versioned by that package, and its `validate()` checks every shape. The
weights go where CTranslate2's fairseq converter puts fairseq's (the export uses fairseq's names; that
converter itself imports torch, so its few setters are written out here). Where seqls differs from
fairseq it is set explicitly: positions are sinusoidal with sin at even and cos at odd columns (Vaswani
et al.; fairseq concatenates them) starting at position 0, the decoder starts from `<s>`, the source
ends with `</s>`, and layer norms use ε = 1e-5 (burn's default).
Needs: pip install ctranslate2 safetensors tokenizers numpy
"""
import json, math, os, shutil, sys

import numpy as np
from safetensors.numpy import load_file
from ctranslate2.specs import common_spec, transformer_spec


def positions(max_positions, d):
    """seqls's table: PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(same), p from 0."""
    table = np.zeros((max_positions, d), dtype=np.float32)
    for p in range(max_positions):
        for i in range(d // 2):
            angle = p / (10000.0 ** (2 * i / d))
            table[p, 2 * i] = math.sin(angle)
            table[p, 2 * i + 1] = math.cos(angle)
    return table


def set_side(spec, weights, config, side):
    """The encoder's or decoder's spec from the fairseq-named `weights` (the layout CTranslate2's
    fairseq converter reads, set here directly: that converter imports torch)."""
    def linear(target, *prefixes):
        # Several projections side by side (Q, K, V) are one linear layer in CTranslate2.
        target.weight = np.concatenate([weights[p + ".weight"] for p in prefixes])
        if prefixes[0] + ".bias" in weights:
            target.bias = np.concatenate([weights[p + ".bias"] for p in prefixes])

    def norm(target, prefix):
        target.gamma, target.beta = weights[prefix + ".weight"], weights[prefix + ".bias"]

    embedding = weights.get(f"{side}.embed_tokens.weight", weights["encoder.embed_tokens.weight"])
    embeddings = spec.embeddings[0] if isinstance(spec.embeddings, list) else spec.embeddings
    embeddings.weight = embedding
    spec.scale_embeddings = config["embed_scale"]
    spec.position_encodings.encodings = positions(config["max_positions"], config["d_model"])
    for i, layer in enumerate(spec.layer):
        p = f"{side}.layers.{i}"
        linear(layer.self_attention.linear[0], p + ".self_attn.q_proj", p + ".self_attn.k_proj", p + ".self_attn.v_proj")
        linear(layer.self_attention.linear[1], p + ".self_attn.out_proj")
        norm(layer.self_attention.layer_norm, p + ".self_attn_layer_norm")
        if side == "decoder":
            linear(layer.attention.linear[0], p + ".encoder_attn.q_proj")
            linear(layer.attention.linear[1], p + ".encoder_attn.k_proj", p + ".encoder_attn.v_proj")
            linear(layer.attention.linear[2], p + ".encoder_attn.out_proj")
            norm(layer.attention.layer_norm, p + ".encoder_attn_layer_norm")
        linear(layer.ffn.linear_0, p + ".fc1")
        linear(layer.ffn.linear_1, p + ".fc2")
        norm(layer.ffn.layer_norm, p + ".final_layer_norm")
    if config["normalize_before"]:
        norm(spec.layer_norm, f"{side}.layer_norm")
    if side == "decoder":
        tied = config["share_decoder_input_output_embed"]
        spec.projection.weight = embedding if tied else weights["decoder.output_projection.weight"]


def main(export_dir, out_dir):
    config = json.load(open(os.path.join(export_dir, "config.json")))
    weights = load_file(os.path.join(export_dir, "model.safetensors"))
    if config["activation"] != "relu" or config["attention_heads"] <= 0:
        sys.exit(f"{export_dir}/config.json: unsupported model ({config['activation']})")
    spec = transformer_spec.TransformerSpec.from_config(
        (config["encoder_layers"], config["decoder_layers"]), config["attention_heads"],
        pre_norm=config["normalize_before"], activation=common_spec.Activation.RELU)
    set_side(spec.encoder, weights, config, "encoder")
    set_side(spec.decoder, weights, config, "decoder")
    tokenizer = json.load(open(os.path.join(export_dir, "tokenizer.json")))
    vocab = sorted(tokenizer["model"]["vocab"].items(), key=lambda kv: kv[1])
    tokens = [token for token, _ in vocab]
    assert [i for _, i in vocab] == list(range(len(vocab))), "tokenizer ids are not 0..V-1"
    spec.register_source_vocabulary(tokens)
    spec.register_target_vocabulary(tokens)
    spec.config.bos_token, spec.config.eos_token, spec.config.unk_token = "<s>", "</s>", "<unk>"
    spec.config.decoder_start_token = "<s>"
    spec.config.add_source_eos = True
    spec.config.layer_norm_epsilon = 1e-5
    spec.validate()
    spec.optimize(quantization=None)
    os.makedirs(out_dir, exist_ok=True)
    spec.save(out_dir)
    shutil.copy(os.path.join(export_dir, "tokenizer.json"), os.path.join(out_dir, "tokenizer.json"))
    # seqls's own description (sizes, special ids, max_positions), which ct2_translate.py reads.
    shutil.copy(os.path.join(export_dir, "config.json"), os.path.join(out_dir, "seqls-config.json"))
    print(json.dumps(dict(out=out_dir, vocabulary=len(tokens), layers=[config["encoder_layers"], config["decoder_layers"]])))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
