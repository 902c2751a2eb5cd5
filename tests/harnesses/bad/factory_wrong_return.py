"""input_factory returns a bare array instead of (args, kwargs)."""
import mlx.core as mx


def fn(x):
    return x + 1


def input_factory(size_label, seed):
    return mx.ones((4,))
