"""fn adds fresh noise on every call."""
import mlx.core as mx


def fn(x):
    return x + mx.random.normal(x.shape)


def input_factory(size_label, seed):
    return (mx.ones((4, 4)),), {}
