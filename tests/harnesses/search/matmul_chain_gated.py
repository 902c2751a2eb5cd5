"""(x @ a) @ b, then a SiLU gate and a row sum: the e-graph's association is ~100x cheaper;
the traced program's islands (the gate between the products and the sum) are not."""
import mlx.core as mx

SIZES = {"small": 128, "typical": 256, "large": 512}
A = mx.random.normal((16, 4096), key=mx.random.key(1)) * 0.25
B = mx.random.normal((4096, 16), key=mx.random.key(2)) * 0.015


def fn(x):
    y = mx.matmul(mx.matmul(x, A), B)
    gated = y * mx.sigmoid(y)
    return mx.sum(gated, axis=-1)


def input_factory(size_label, seed):
    return (mx.random.normal((SIZES[size_label], 16), key=mx.random.key(seed)),), {}
