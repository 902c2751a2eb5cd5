"""GELU with 0.04472 for 0.044715."""
import math

import mlx.core as mx

HARNESS = "examples/gelu_tanh.py"


def optimized(x):
    return 0.5 * x * (1.0 + mx.tanh(math.sqrt(2.0 / math.pi) * (x + 0.04472 * x * x * x)))
