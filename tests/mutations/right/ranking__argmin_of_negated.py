"""argmax as argmin of -x."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/ranking.py"


def optimized(x):
    best = mx.argmin(-x, axis=-1)
    top2 = mx.argsort(-x, axis=-1)[..., :2]
    above = mx.sum(x > 0, axis=-1)
    return best, top2, above, mx.max(x, axis=-1)
