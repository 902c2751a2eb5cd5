"""A near miss of ok/varies_in_rounding.py: every other call is off by 1e-3 (relative), more
than any rounding of float32 sums."""
import mlx.core as mx

calls = [0]


def fn(x):
    calls[0] += 1
    return mx.sum(x, axis=-1) * (1.0 if calls[0] % 2 else 1.001)


def input_factory(size_label, seed):
    n = {"small": 1000, "typical": 4000, "large": 16000}[size_label]
    return (mx.random.normal((64, n), key=mx.random.key(seed)),), {}
