"""A softmax whose float64 reference is slow (a sleep on float64 inputs only): the run
waits for the reference pool, and that wait must not drop its candidates."""
import time

import mlx.core as mx


def fn(x):
    if x.dtype == mx.float64:
        time.sleep(0.6)
    e = mx.exp(x - mx.max(x, axis=-1, keepdims=True))
    return e / mx.sum(e, axis=-1, keepdims=True)


def input_factory(size_label, seed):
    rows = {"small": 8, "typical": 64, "large": 256}[size_label]
    return (mx.random.normal((rows, 128), key=mx.random.key(seed)),), {}
