"""A block timed as a model's layers run (DEVICE_TIME): the device's part of each call only."""
import mlx.core as mx

DEVICE_TIME = True


def fn(x, w):
    return mx.maximum(x @ w, 0.0) * 0.5 + 1.0


def input_factory(size_label, seed):
    n = {"small": 64, "typical": 128, "large": 256}[size_label]
    k = mx.random.split(mx.random.key(seed))
    return (mx.random.normal((n, n), key=k[0]), mx.random.normal((n, n), key=k[1])), {}
