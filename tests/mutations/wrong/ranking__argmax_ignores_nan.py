"""argmax with NaN entries replaced by -inf first: same on finite inputs, another index where a row holds NaN."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/ranking.py"


def optimized(x):
    best = mx.argmax(mx.where(mx.isnan(x), -mx.inf, x), axis=-1)
    top2 = mx.argsort(-x, axis=-1)[..., :2]
    above = mx.sum(x > 0, axis=-1)
    return best, top2, above, mx.max(x, axis=-1)
