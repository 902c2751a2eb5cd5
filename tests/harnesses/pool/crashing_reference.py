"""A softmax whose float64 reference kills its process: the reference pool's workers die
on every case, and the run must say so."""
import os

import mlx.core as mx


def fn(x):
    if x.dtype == mx.float64:
        os._exit(3)
    return mx.softmax(x, axis=-1)


def input_factory(size_label, seed):
    rows = {"small": 8, "typical": 64, "large": 256}[size_label]
    return (mx.random.normal((rows, 128), key=mx.random.key(seed)),), {}
