"""The top-2 indices taken one position late."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/ranking.py"


def optimized(x):
    best = mx.argmax(x, axis=-1)
    top2 = mx.argsort(-x, axis=-1)[..., 1:3]
    above = mx.sum(x > 0, axis=-1)
    return best, top2, above, mx.max(x, axis=-1)
