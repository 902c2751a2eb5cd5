"""A hand-written sigmoid of a tanh (a soft-capped gate): exp(t) / (1 + exp(t)) * v, t = tanh(x).
The field check cannot run exp of t exactly (t is no input's linear form): one uninterpreted
exp for every primitive that exponentiates must hold exp(-t) = 1 / exp(t)."""
import mlx.core as mx

SHAPES = {"small": (4, 64), "typical": (128, 512), "large": (512, 1024)}


def fn(x, v):
    e = mx.exp(mx.tanh(x))
    return e / (1.0 + e) * v


def input_factory(size_label, seed):
    kx, kv = mx.random.split(mx.random.key(seed))
    return (mx.random.normal(SHAPES[size_label], key=kx), mx.random.normal(SHAPES[size_label], key=kv)), {}
