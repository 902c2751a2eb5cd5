"""The row sum taken over the columns of a square matrix."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/square.py"


def optimized(a, b):
    return mx.softmax(a @ b, axis=-1) + mx.sum(a, axis=0, keepdims=True).T * 0.01
