"""mlx-lm's Llama-3-8B MLP (gate/up/down, SwiGLU), 4-bit in groups of 64, bfloat16, at
decode: batch 1, 8, 32 tokens."""
import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.llama import MLP, ModelArgs
from _sizes import pick

HIDDEN, INTER = pick((4096, 14336), (256, 512))
TOKENS = pick({"small": 1, "typical": 8, "large": 32}, {"small": 1, "typical": 4, "large": 8})
# A model's decode layer: the host builds it while the device runs the layers before it.
DEVICE_TIME = True
ARGS = ModelArgs(model_type="llama", hidden_size=HIDDEN, num_hidden_layers=1, intermediate_size=INTER,
                 num_attention_heads=32, rms_norm_eps=1e-5, vocab_size=1000, num_key_value_heads=8)
mx.random.seed(6)
MLP_4BIT = MLP(ARGS)
MLP_4BIT.set_dtype(mx.bfloat16)
nn.quantize(MLP_4BIT, group_size=64, bits=4)
mx.eval(MLP_4BIT.parameters())


def fn(x):
    return MLP_4BIT(x)


def input_factory(size_label, seed):
    x = mx.random.normal((TOKENS[size_label], 1, HIDDEN), key=mx.random.key(seed))
    return (x.astype(mx.bfloat16),), {}
