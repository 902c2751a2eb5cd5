"""GELU (tanh approximation) by hand."""
import math

import mlx.core as mx
from _sizes import pick

SHAPES = pick({"small": (256, 4096), "typical": (4096, 4096), "large": (8192, 8192)},
              {"small": (16, 512), "typical": (256, 1024), "large": (1024, 2048)})


def fn(x):
    return 0.5 * x * (1.0 + mx.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def input_factory(size_label, seed):
    return (mx.random.normal(SHAPES[size_label], key=mx.random.key(seed)),), {}
