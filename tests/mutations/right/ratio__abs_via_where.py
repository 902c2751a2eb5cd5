"""|y| written as where(y < 0, -y, y)."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/ratio.py"


def optimized(x, y):
    return x * 2.0 + mx.where(y < 0, -y, y) * 0.5
