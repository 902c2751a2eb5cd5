"""RMSNorm right except the last row, which is off by a relative 1e-5 (about 80 float32 ulps)."""
import mlx.core as mx

HARNESS = "examples/rms_norm.py"


def optimized(x, weight):
    out = x * mx.rsqrt(mx.mean(x * x, axis=-1, keepdims=True) + 1e-5) * weight
    return mx.concatenate([out[:-1], out[-1:] * (1.0 + 1e-5)], axis=0)
