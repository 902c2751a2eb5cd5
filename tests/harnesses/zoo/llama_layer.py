"""One mlx-lm Llama decoder layer (GQA, SwiGLU MLP), tiny random config, causal mask, no KV cache."""
import mlx.core as mx
from mlx_lm.models import llama

ARGS = llama.ModelArgs(
    model_type="llama",
    hidden_size=128,
    num_hidden_layers=1,
    intermediate_size=256,
    num_attention_heads=4,
    num_key_value_heads=2,
    rms_norm_eps=1e-5,
    vocab_size=100,
    rope_theta=10000.0,
)
mx.random.seed(1)
LAYER = llama.TransformerBlock(ARGS)
mx.eval(LAYER.parameters())

SHAPES = {"small": (1, 4), "typical": (1, 16), "large": (2, 32)}


def fn(x):
    return LAYER(x, mask="causal", cache=None)


def input_factory(size_label, seed):
    b, t = SHAPES[size_label]
    return (mx.random.normal((b, t, ARGS.hidden_size), key=mx.random.key(seed)),), {}
