"""Converts `seqls export --format safetensors` output into a CTranslate2 model directory.

Usage: export_ct2.py EXPORT_DIR OUT_DIR

Written through the `ctranslate2` package's own spec API and its fairseq converter's layer setters
(the export already uses fairseq's parameter names), rather than writing CTranslate2's binary format
by hand: the format is versioned by that package, and its `validate()` checks every shape. What the
fairseq converter assumes and seqls differs in is set here: positions are sinusoidal with sin at even
and cos at odd columns (Vaswani et al.; fairseq concatenates them) starting at position 0, the
decoder starts from `<s>`, the source ends with `</s>`, and layer norms use ε = 1e-5 (burn's default).
Needs: pip install ctranslate2 safetensors tokenizers numpy
"""
import json, math, os, shutil, sys, types

import numpy as np
from safetensors.numpy import load_file
from ctranslate2.converters import fairseq as fairseq_converter
from ctranslate2.specs import common_spec, transformer_spec


class Array:
    """A weight as the converter's setters read it (`.numpy()`)."""

    def __init__(self, values):
        self.values = values

    def numpy(self):
        return self.values


def positions(max_positions, d):
    """seqls's table: PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(same), p from 0."""
    table = np.zeros((max_positions, d), dtype=np.float32)
    for p in range(max_positions):
        for i in range(d // 2):
            angle = p / (10000.0 ** (2 * i / d))
            table[p, 2 * i] = math.sin(angle)
            table[p, 2 * i + 1] = math.cos(angle)
    return table


def module_tree(weights, config, side):
    """The fairseq module attributes the converter's setters read, for `side` ("encoder"/"decoder")."""
    def linear(prefix):
        bias = weights.get(prefix + ".bias")
        return types.SimpleNamespace(weight=Array(weights[prefix + ".weight"]),
                                     bias=None if bias is None else Array(bias))

    def norm(prefix):
        return types.SimpleNamespace(weight=Array(weights[prefix + ".weight"]), bias=Array(weights[prefix + ".bias"]))

    def attention(prefix):
        return types.SimpleNamespace(**{p: linear(f"{prefix}.{p}") for p in ("q_proj", "k_proj", "v_proj", "out_proj")})

    d = config["d_model"]
    embedding = weights.get(f"{side}.embed_tokens.weight", weights["encoder.embed_tokens.weight"])
    layers = []
    for i in range(config[f"{side}_layers"]):
        p = f"{side}.layers.{i}"
        layer = types.SimpleNamespace(self_attn=attention(p + ".self_attn"), self_attn_layer_norm=norm(p + ".self_attn_layer_norm"),
                                      final_layer_norm=norm(p + ".final_layer_norm"), fc1=linear(p + ".fc1"), fc2=linear(p + ".fc2"))
        if side == "decoder":
            layer.encoder_attn = attention(p + ".encoder_attn")
            layer.encoder_attn_layer_norm = norm(p + ".encoder_attn_layer_norm")
        layers.append(layer)
    tree = types.SimpleNamespace(
        embed_tokens=types.SimpleNamespace(weight=Array(embedding)),
        # The setter drops rows up to `padding_idx` (fairseq's positions start after it); seqls's at 0.
        embed_positions=types.SimpleNamespace(weights=Array(positions(config["max_positions"], d)), padding_idx=-1),
        embed_scale=config["embed_scale"], layers=layers,
        layer_norm=norm(f"{side}.layer_norm") if config["normalize_before"] else None, layernorm_embedding=None)
    if side == "decoder":
        tied = config["share_decoder_input_output_embed"]
        tree.output_projection = types.SimpleNamespace(
            weight=Array(embedding if tied else weights["decoder.output_projection.weight"]), bias=None)
        tree.project_in_dim = tree.project_out_dim = None
    return tree


def main(export_dir, out_dir):
    config = json.load(open(os.path.join(export_dir, "config.json")))
    weights = load_file(os.path.join(export_dir, "model.safetensors"))
    if config["activation"] != "relu" or config["attention_heads"] <= 0:
        sys.exit(f"{export_dir}/config.json: unsupported model ({config['activation']})")
    spec = transformer_spec.TransformerSpec.from_config(
        (config["encoder_layers"], config["decoder_layers"]), config["attention_heads"],
        pre_norm=config["normalize_before"], activation=common_spec.Activation.RELU)
    fairseq_converter.set_transformer_encoder(spec.encoder, module_tree(weights, config, "encoder"))
    fairseq_converter.set_transformer_decoder(spec.decoder, module_tree(weights, config, "decoder"))
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
