"""RMSNorm with mx.square and a division by sqrt."""
import mlx.core as mx

HARNESS = "examples/rms_norm.py"


def optimized(x, weight):
    return x / mx.sqrt(mx.mean(mx.square(x), axis=-1, keepdims=True) + 1e-5) * weight
