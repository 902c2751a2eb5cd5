"""mx.fast.rms_norm for the hand-written RMSNorm."""
import mlx.core as mx

HARNESS = "examples/rms_norm.py"


def optimized(x, weight):
    return mx.fast.rms_norm(x, weight, 1e-5)
