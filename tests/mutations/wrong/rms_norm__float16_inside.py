"""RMSNorm computed in float16 and cast back: a silently narrowed dtype."""
import mlx.core as mx

HARNESS = "examples/rms_norm.py"


def optimized(x, weight):
    h = x.astype(mx.float16)
    return (h * mx.rsqrt(mx.mean(h * h, axis=-1, keepdims=True) + 1e-5) * weight.astype(mx.float16)).astype(mx.float32)
