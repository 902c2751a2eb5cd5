"""mlx-lm's Qwen3-30B-A3B sparse MoE block (router 8-bit, experts 4-bit, groups of 64) at
prefill: 512, 2048, 4096 tokens of one sequence."""
import mlx.core as mx
from _qwen3_moe import BLOCK, HIDDEN
from _sizes import pick

TOKENS = pick({"small": 512, "typical": 2048, "large": 4096}, {"small": 16, "typical": 64, "large": 128})


def fn(x):
    return BLOCK(x)


def input_factory(size_label, seed):
    return (mx.random.normal((1, TOKENS[size_label], HIDDEN), key=mx.random.key(seed)),), {}
