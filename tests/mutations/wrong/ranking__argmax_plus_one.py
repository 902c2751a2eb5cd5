"""The argmax index off by one (argmax + 1, wrapped at the row end)."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/ranking.py"


def optimized(x):
    best = ((mx.argmax(x, axis=-1) + 1) % x.shape[-1]).astype(mx.uint32)
    top2 = mx.argsort(-x, axis=-1)[..., :2]
    above = mx.sum(x > 0, axis=-1)
    return best, top2, above, mx.max(x, axis=-1)
