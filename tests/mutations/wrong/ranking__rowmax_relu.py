"""Row max taken of relu(x): right whenever a row has a positive entry (all normal seeds), wrong on all-negative inputs."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/ranking.py"


def optimized(x):
    best = mx.argmax(x, axis=-1)
    top2 = mx.argsort(-x, axis=-1)[..., :2]
    above = mx.sum(x > 0, axis=-1)
    return best, top2, above, mx.max(mx.maximum(x, 0.0), axis=-1)
