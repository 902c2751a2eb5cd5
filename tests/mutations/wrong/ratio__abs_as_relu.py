"""|y| replaced by max(y, 0): right for positive y only."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/ratio.py"


def optimized(x, y):
    return x * 2.0 + mx.maximum(y, 0.0) * 0.5
