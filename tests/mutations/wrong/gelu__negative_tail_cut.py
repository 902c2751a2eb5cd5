"""GELU set to 0 below -3: right for most normal inputs only."""
import math

import mlx.core as mx

HARNESS = "examples/gelu_tanh.py"


def optimized(x):
    g = 0.5 * x * (1.0 + mx.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))
    return mx.where(x < -3.0, 0.0, g)
