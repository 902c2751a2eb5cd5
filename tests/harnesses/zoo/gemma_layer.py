"""One mlx-lm Gemma decoder layer, tiny random config."""
import mlx.core as mx
from mlx_lm.models import gemma

ARGS = gemma.ModelArgs(model_type="gemma", hidden_size=128, num_hidden_layers=1, intermediate_size=256,
                       num_attention_heads=4, head_dim=32, rms_norm_eps=1e-6, vocab_size=100, num_key_value_heads=1)
mx.random.seed(3)
LAYER = gemma.TransformerBlock(ARGS)
mx.eval(LAYER.parameters())
T = {"small": 4, "typical": 16, "large": 32}


def fn(x):
    return LAYER(x, mask="causal", cache=None)


def input_factory(size_label, seed):
    return (mx.random.normal((1, T[size_label], 128), key=mx.random.key(seed)),), {}
