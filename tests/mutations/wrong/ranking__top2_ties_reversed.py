"""Top-2 read from the end of an ascending argsort: same on distinct values, other indices on ties."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/ranking.py"


def optimized(x):
    n = x.shape[-1]
    best = mx.argmax(x, axis=-1)
    top2 = mx.take(mx.argsort(x, axis=-1), mx.array([n - 1, n - 2]), axis=-1)
    above = mx.sum(x > 0, axis=-1)
    return best, top2, above, mx.max(x, axis=-1)
