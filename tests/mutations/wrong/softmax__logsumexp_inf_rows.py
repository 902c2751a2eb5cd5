"""Softmax as exp(x - logsumexp(x)): equal on finite inputs, but a row holding +inf is NaN in fn and mostly 0 here."""
import mlx.core as mx

HARNESS = "examples/softmax.py"


def optimized(x):
    return mx.exp(x - mx.logsumexp(x, axis=-1, keepdims=True))
