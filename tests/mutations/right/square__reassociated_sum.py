"""The row sum added up in two halves."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/square.py"


def optimized(a, b):
    n = a.shape[-1] // 2
    s = mx.sum(a[:, :n], axis=-1, keepdims=True) + mx.sum(a[:, n:], axis=-1, keepdims=True)
    return mx.softmax(a @ b, axis=-1) + s * 0.01
