"""LayerNorm through mx.fast.layer_norm, with weight and bias, and once with neither."""
import mlx.core as mx

D = 256
W = 1.0 + 0.1 * mx.random.normal((D,), key=mx.random.key(21))
B = 0.1 * mx.random.normal((D,), key=mx.random.key(22))
mx.eval(W, B)

ROWS = {"small": 8, "typical": 256, "large": 2048}


def fn(x):
    y = mx.fast.layer_norm(x, W, B, 1e-5)
    return mx.fast.layer_norm(y * 2.0, None, None, 1e-6)


def input_factory(size_label, seed):
    return (mx.random.normal((ROWS[size_label], D), key=mx.random.key(seed)),), {}
