"""cache_in_place.py's step written functionally: the caller's buffer is left as it was."""
import mlx.core as mx

SIZES = {"small": (4, 512), "typical": (8, 1024), "large": (8, 2048)}


def fn(x, keys):
    keys = mx.slice_update(keys, mx.tanh(x), mx.array([7]), axes=(1,))
    return mx.sum(keys[:, :8, :], axis=1), keys


def input_factory(size_label, seed):
    batch, capacity = SIZES[size_label]
    k = mx.random.split(mx.random.key(seed))
    return (mx.random.normal((batch, 1, 128), key=k[0]), mx.random.normal((batch, capacity, 128), key=k[1])), {}
