"""Softmax without the max subtraction: equal in exact arithmetic, but exp overflows (inf/inf = NaN) on 1e4-scale inputs where fn is finite."""
import mlx.core as mx

HARNESS = "examples/softmax.py"


def optimized(x):
    e = mx.exp(x)
    return e / mx.sum(e, axis=-1, keepdims=True)
