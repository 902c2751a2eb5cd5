"""Softmax as the exponential of a hand-written, max-shifted log-softmax."""
import mlx.core as mx

SHAPES = {"small": (4, 32), "typical": (16, 64), "large": (32, 128)}


def fn(x):
    z = x - mx.max(x, axis=-1, keepdims=True)
    return mx.exp(z - mx.log(mx.sum(mx.exp(z), axis=-1, keepdims=True)))


def input_factory(size_label, seed):
    return (mx.random.normal(SHAPES[size_label], key=mx.random.key(seed)),), {}
