"""(x @ a) @ b with every matrix an argument: x 2048x64, a 64x2048, b 2048x64."""
import mlx.core as mx

N = {"small": 512, "typical": 2048, "large": 4096}


def fn(x, a, b):
    return x @ a @ b


def input_factory(size_label, seed):
    n = N[size_label]
    ks = mx.random.split(mx.random.key(seed), 3)
    return (mx.random.normal((n, 64), key=ks[0]), mx.random.normal((64, n), key=ks[1]), mx.random.normal((n, 64), key=ks[2])), {}
