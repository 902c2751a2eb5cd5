"""mx.sigmoid for the hand-written 1 / (1 + exp(-x))."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/silu.py"


def optimized(x, y):
    return x * mx.sigmoid(x) * y
