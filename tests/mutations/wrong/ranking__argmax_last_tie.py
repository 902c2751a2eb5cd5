"""The argmax that picks the last of tied maxima: differs only on ties."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/ranking.py"


def optimized(x):
    best = (x.shape[-1] - 1 - mx.argmax(x[..., ::-1], axis=-1)).astype(mx.uint32)
    top2 = mx.argsort(-x, axis=-1)[..., :2]
    above = mx.sum(x > 0, axis=-1)
    return best, top2, above, mx.max(x, axis=-1)
