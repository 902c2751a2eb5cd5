"""A deterministic fn that draws random numbers from a key it is given (dropout-like)."""
import mlx.core as mx


def fn(x, key):
    keep = mx.random.uniform(shape=x.shape, key=key) > 0.25
    return mx.where(keep, x / 0.75, 0.0)


def input_factory(size_label, seed):
    n = {"small": 64, "typical": 256, "large": 1024}[size_label]
    return (mx.random.normal((8, n), key=mx.random.key(seed)), mx.random.key(seed + 100)), {}
