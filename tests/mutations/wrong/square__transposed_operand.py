"""The product with its left operand transposed (square, so it runs)."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/square.py"


def optimized(a, b):
    return mx.softmax(a.T @ b, axis=-1) + mx.sum(a, axis=-1, keepdims=True) * 0.01
