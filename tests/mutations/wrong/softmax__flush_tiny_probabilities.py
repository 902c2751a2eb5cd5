"""Softmax with probabilities below 1e-7 flushed to 0: 100% relative error on those entries, tiny against the row's norm."""
import mlx.core as mx

HARNESS = "examples/softmax.py"


def optimized(x):
    p = mx.softmax(x, axis=-1)
    return mx.where(p < 1e-7, 0.0, p)
