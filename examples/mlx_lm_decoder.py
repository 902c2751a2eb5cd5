"""One Qwen3 decoder layer from mlx-lm (small random config, causal mask, no KV cache)."""

import mlx.core as mx
from mlx_lm.models import qwen3

ARGS = qwen3.ModelArgs(
    model_type="qwen3",
    hidden_size=256,
    num_hidden_layers=1,
    intermediate_size=512,
    num_attention_heads=8,
    num_key_value_heads=2,
    head_dim=32,
    rms_norm_eps=1e-6,
    vocab_size=1000,
    max_position_embeddings=4096,
    rope_theta=1000000.0,
    tie_word_embeddings=False,
)
mx.random.seed(0)
LAYER = qwen3.TransformerBlock(ARGS)
mx.eval(LAYER.parameters())

SHAPES = {"small": (1, 8), "typical": (1, 64), "large": (2, 96)}


def fn(x):
    return LAYER(x, mask="causal", cache=None)


def input_factory(size_label, seed):
    b, t = SHAPES[size_label]
    return (mx.random.normal((b, t, ARGS.hidden_size), key=mx.random.key(seed)),), {}
