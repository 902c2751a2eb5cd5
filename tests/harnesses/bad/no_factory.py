"""A harness without input_factory."""
import mlx.core as mx


def fn(x):
    return x + 1
