"""x * 2 written as x * x / x * 2: NaN where x is 0."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/ratio.py"


def optimized(x, y):
    return x * x / x * 2.0 + mx.abs(y) * 0.5
