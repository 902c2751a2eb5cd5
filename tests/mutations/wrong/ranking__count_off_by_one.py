"""The positive count off by one in its first row."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/ranking.py"


def optimized(x):
    best = mx.argmax(x, axis=-1)
    top2 = mx.argsort(-x, axis=-1)[..., :2]
    count = mx.sum(x > 0, axis=-1)
    above = count + (mx.arange(x.shape[0]) == 0).astype(count.dtype)
    return best, top2, above, mx.max(x, axis=-1)
