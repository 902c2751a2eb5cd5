"""A projection chain written left to right: (x @ A) @ B with a wide middle."""
import mlx.core as mx

ROWS = {"small": 256, "typical": 2048, "large": 4096}
A = mx.random.normal((64, 2048), key=mx.random.key(1)) * 0.1
B = mx.random.normal((2048, 64), key=mx.random.key(2)) * 0.1


def fn(x):
    h = mx.matmul(x, A)
    return mx.matmul(h, B)


def input_factory(size_label, seed):
    return (mx.random.normal((ROWS[size_label], 64), key=mx.random.key(seed)),), {}
