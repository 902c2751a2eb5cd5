"""Writes an mlx-lm model with random weights: `python random_model.py KIND DIR [--real]`, KIND
`qwen3` (dense) or `qwen3_moe` (its experts 4-bit, group 64). Tiny and float32 by default; with
`--real`, 4 layers at Qwen3-8B's dims (bfloat16) or Qwen3-30B-A3B's (bfloat16, 128 experts, top 8)."""
import importlib
import json
import os
import sys

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

COMMON = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
              rms_norm_eps=1e-6, vocab_size=512, max_position_embeddings=2048, rope_theta=1e6)
CONFIGS = {
    "qwen3": dict(model_type="qwen3", intermediate_size=256, tie_word_embeddings=True, **COMMON),
    "qwen3_moe": dict(model_type="qwen3_moe", intermediate_size=256, tie_word_embeddings=False, num_experts=8,
                      num_experts_per_tok=2, decoder_sparse_step=1, mlp_only_layers=[], moe_intermediate_size=64,
                      norm_topk_prob=True, **COMMON),
}


REAL = {
    "qwen3": dict(hidden_size=4096, intermediate_size=12288, num_attention_heads=32, num_key_value_heads=8,
                  head_dim=128, vocab_size=151936, num_hidden_layers=4, tie_word_embeddings=False),
    "qwen3_moe": dict(hidden_size=2048, intermediate_size=6144, num_attention_heads=32, num_key_value_heads=4,
                      head_dim=128, vocab_size=151936, num_hidden_layers=4, num_experts=128, num_experts_per_tok=8,
                      moe_intermediate_size=768),
}


def main(kind, out, real=False):
    config = dict(CONFIGS[kind], **(REAL[kind] if real else {}))
    arch = importlib.import_module(f"mlx_lm.models.{kind}")
    mx.random.seed(0)
    model = arch.Model(arch.ModelArgs.from_dict(config))
    if real:
        model.set_dtype(mx.bfloat16)
    if kind == "qwen3_moe":
        nn.quantize(model, group_size=64, bits=4, class_predicate=lambda path, m: hasattr(m, "to_quantized") and "switch_mlp" in path)
        config["quantization"] = {"group_size": 64, "bits": 4}
    os.makedirs(out, exist_ok=True)
    mx.save_safetensors(os.path.join(out, "model.safetensors"), dict(tree_flatten(model.parameters())))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], real="--real" in sys.argv[3:])
