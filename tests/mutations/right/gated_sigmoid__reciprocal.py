"""The gate as exp(z) times a reciprocal (other rounding, NaN/Inf at the same places)."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/gated_sigmoid.py"


def optimized(z, v):
    e = mx.exp(z)
    return e * mx.reciprocal(1.0 + e) * v
