"""RMSNorm of nan_to_num(x): same on finite inputs, finite output where fn gives NaN/Inf."""
import mlx.core as mx

HARNESS = "examples/rms_norm.py"


def optimized(x, weight):
    x = mx.nan_to_num(x)
    return x * mx.rsqrt(mx.mean(x * x, axis=-1, keepdims=True) + 1e-5) * weight
