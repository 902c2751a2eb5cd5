"""RMSNorm with the 1/n scale of the mean missing."""
import mlx.core as mx

HARNESS = "examples/rms_norm.py"


def optimized(x, weight):
    return x * mx.rsqrt(mx.sum(x * x, axis=-1, keepdims=True) + 1e-5) * weight
