"""The tanh GELU with x^3 as x * x^2 and the constants folded."""
import math

import mlx.core as mx

HARNESS = "examples/gelu_tanh.py"


def optimized(x):
    c = math.sqrt(2.0 / math.pi)
    return x * 0.5 * (1.0 + mx.tanh(c * x * (1.0 + 0.044715 * (x * x))))
