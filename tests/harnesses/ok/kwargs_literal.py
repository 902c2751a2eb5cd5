"""Keyword array arguments, a plain int argument, and two outputs (float and bool)."""
import mlx.core as mx

W = mx.random.normal((32, 32), key=mx.random.key(7))
mx.eval(W)
ROWS = {"small": 4, "typical": 16, "large": 64}


def fn(x, heads, *, bias):
    y = (x @ W + bias).reshape(x.shape[0], heads, -1)
    return y.sum(axis=-1), y > 0


def input_factory(size_label, seed):
    kx, kb = mx.random.split(mx.random.key(seed))
    x = mx.random.normal((ROWS[size_label], 32), key=kx)
    return (x, 4), {"bias": mx.random.normal((32,), key=kb)}
