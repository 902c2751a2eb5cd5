"""One mlx-lm Llama decoder layer, tiny random config."""
import mlx.core as mx
from mlx_lm.models import llama

ARGS = llama.ModelArgs(model_type="llama", hidden_size=128, num_hidden_layers=1, intermediate_size=256,
                       num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5, vocab_size=100)
mx.random.seed(1)
LAYER = llama.TransformerBlock(ARGS)
mx.eval(LAYER.parameters())
T = {"small": 4, "typical": 16, "large": 32}


def fn(x):
    return LAYER(x, mask="causal", cache=None)


def input_factory(size_label, seed):
    return (mx.random.normal((1, T[size_label], 128), key=mx.random.key(seed)),), {}
