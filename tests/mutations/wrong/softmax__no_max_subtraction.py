"""Softmax without the max subtraction: overflows where fn does not."""
import mlx.core as mx

HARNESS = "examples/softmax.py"


def optimized(x):
    e = mx.exp(x)
    return e / mx.sum(e, axis=-1, keepdims=True)
