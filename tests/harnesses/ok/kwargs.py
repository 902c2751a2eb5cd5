"""An array passed as a keyword argument: x * scale + shift."""
import mlx.core as mx

ROWS = {"small": 4, "typical": 32, "large": 128}


def fn(x, *, shift):
    return x * 2.0 + shift


def input_factory(size_label, seed):
    kx, ks = mx.random.split(mx.random.key(seed))
    x = mx.random.normal((ROWS[size_label], 16), key=kx)
    return (x,), {"shift": mx.random.normal((16,), key=ks)}
