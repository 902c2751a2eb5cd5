"""The hand-written softmax with the division replaced by a multiply by the reciprocal of the sum."""
import mlx.core as mx

HARNESS = "examples/softmax.py"


def optimized(x):
    e = mx.exp(x - mx.max(x, axis=-1, keepdims=True))
    return e * mx.reciprocal(mx.sum(e, axis=-1, keepdims=True))
