"""(x @ a) @ b where x @ (a @ b) is cheaper: a small copy for the integration tests."""
import mlx.core as mx

SIZES = {"small": 64, "typical": 128, "large": 256}
A = mx.random.normal((16, 256), key=mx.random.key(1))
B = mx.random.normal((256, 16), key=mx.random.key(2))


def fn(x):
    return mx.matmul(mx.matmul(x, A), B)


def input_factory(size_label, seed):
    return (mx.random.normal((SIZES[size_label], 16), key=mx.random.key(seed)),), {}
