"""fn raises."""
import mlx.core as mx


def fn(x):
    raise ValueError("boom")


def input_factory(size_label, seed):
    return (mx.ones((4,)),), {}
