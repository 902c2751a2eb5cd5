"""A sigmoid whose `fast_fn` kills the worker: the suite goes on with a restarted one."""
import os

import mlx.core as mx

SHAPES = {"small": (64, 256), "typical": (256, 256), "large": (512, 256)}


def fn(z):
    return mx.exp(z) / (1 + mx.exp(z))


def fast_fn(z):
    os._exit(3)


def input_factory(size_label, seed):
    return (mx.random.normal(SHAPES[size_label], key=mx.random.key(seed)),), {}
