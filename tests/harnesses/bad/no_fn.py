"""A harness without fn."""
import mlx.core as mx


def input_factory(size_label, seed):
    return (mx.ones((4,)),), {}
