"""mlx.nn.silu for x * (1 / (1 + exp(-x))), with the product re-associated (silu(x) * y)."""
import mlx.core as mx
import mlx.nn as nn

HARNESS = "tests/mutations/harnesses/silu.py"


def optimized(x, y):
    return nn.silu(x) * y
