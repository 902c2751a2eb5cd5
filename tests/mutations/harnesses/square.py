"""Square products and reductions: shapes where a wrong axis or a transposed operand still runs."""
import mlx.core as mx

N = {"small": 8, "typical": 64, "large": 256}


def fn(a, b):
    p = a @ b
    return mx.softmax(p, axis=-1) + mx.sum(a, axis=-1, keepdims=True) * 0.01


def input_factory(size_label, seed):
    n = N[size_label]
    ka, kb = mx.random.split(mx.random.key(seed))
    return (mx.random.normal((n, n), key=ka), mx.random.normal((n, n), key=kb) * n**-0.5), {}
