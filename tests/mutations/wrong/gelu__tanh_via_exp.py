"""tanh(u) written as (e^2u - 1) / (e^2u + 1): right on normal inputs, inf/inf = NaN at 1e4 scale where fn is finite."""
import math

import mlx.core as mx

HARNESS = "examples/gelu_tanh.py"


def optimized(x):
    inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)
    e = mx.exp(2.0 * inner)
    return 0.5 * x * (1.0 + (e - 1.0) / (e + 1.0))
