"""Softmax of x / 2."""
import mlx.core as mx

HARNESS = "examples/softmax.py"


def optimized(x):
    return mx.softmax(x * 0.5, axis=-1)
