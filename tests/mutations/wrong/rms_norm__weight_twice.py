"""RMSNorm with the weight applied twice."""
import mlx.core as mx

HARNESS = "examples/rms_norm.py"


def optimized(x, weight):
    return x * mx.rsqrt(mx.mean(x * x, axis=-1, keepdims=True) + 1e-5) * weight * weight
