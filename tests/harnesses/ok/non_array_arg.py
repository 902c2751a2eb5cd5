"""A plain int argument besides the array: split the features into n_heads and sum each head."""
import mlx.core as mx

ROWS = {"small": 4, "typical": 32, "large": 128}


def fn(x, n_heads):
    return x.reshape(x.shape[0], n_heads, -1).sum(axis=-1)


def input_factory(size_label, seed):
    return (mx.random.normal((ROWS[size_label], 64), key=mx.random.key(seed)), 4), {}
