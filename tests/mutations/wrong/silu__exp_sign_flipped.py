"""The hand-written sigmoid with exp(x) for exp(-x), i.e. sigmoid(-x)."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/silu.py"


def optimized(x, y):
    return x * (1.0 / (1.0 + mx.exp(x))) * y
