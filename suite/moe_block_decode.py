"""mlx-lm's Qwen3-30B-A3B sparse MoE block (router 8-bit, experts 4-bit, groups of 64) at
decode: batch 1, 8, 32 tokens."""
import mlx.core as mx
from _qwen3_moe import BLOCK, HIDDEN
from _sizes import pick

TOKENS = pick({"small": 1, "typical": 8, "large": 32}, {"small": 1, "typical": 4, "large": 8})
# A model's decode layer: the host builds it while the device runs the layers before it.
DEVICE_TIME = True


def fn(x):
    return BLOCK(x)


def input_factory(size_label, seed):
    return (mx.random.normal((TOKENS[size_label], 1, HIDDEN), key=mx.random.key(seed)),), {}
