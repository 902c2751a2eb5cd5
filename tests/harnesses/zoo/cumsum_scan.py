"""Scans: inclusive/exclusive/reverse mx.cumsum, mx.cumprod and mx.cummax."""
import mlx.core as mx

SHAPES = {"small": (4, 16), "typical": (64, 512), "large": (256, 2048)}


def fn(x):
    a = mx.cumsum(x, axis=-1)
    b = mx.cumsum(x, axis=0, reverse=True, inclusive=False)
    c = mx.cumprod(1.0 + 0.01 * x, axis=-1)
    d = mx.cummax(x, axis=-1)
    return a + b, c, d


def input_factory(size_label, seed):
    return (mx.random.normal(SHAPES[size_label], key=mx.random.key(seed)),), {}
