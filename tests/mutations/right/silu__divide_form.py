"""x / (1 + exp(-x)) for x * (1 / (1 + exp(-x))): one rounding fewer."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/silu.py"


def optimized(x, y):
    return x / (1.0 + mx.exp(-x)) * y
