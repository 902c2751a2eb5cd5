"""A gram matrix over GQA-expanded keys: k repeated 4x, then an einsum at full head count."""
import mlx.core as mx
from _sizes import pick

SHAPES = pick({"small": (1, 8, 256, 128), "typical": (1, 8, 2048, 128), "large": (1, 8, 4096, 128)},
              {"small": (1, 2, 32, 32), "typical": (1, 2, 128, 64), "large": (1, 4, 256, 64)})


def fn(k):
    kr = mx.repeat(k, 4, axis=1)
    return mx.einsum("bhtd,bhsd->bhts", kr, kr)


def input_factory(size_label, seed):
    return (mx.random.normal(SHAPES[size_label], key=mx.random.key(seed)),), {}
