"""RMSNorm's mean taken over the rows instead of the features."""
import mlx.core as mx

HARNESS = "examples/rms_norm.py"


def optimized(x, weight):
    return x * mx.rsqrt(mx.mean(x * x, axis=0, keepdims=True) + 1e-5) * weight
