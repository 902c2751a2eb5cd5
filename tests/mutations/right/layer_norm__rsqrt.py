"""LayerNorm with rsqrt and the weight folded into the scale."""
import mlx.core as mx

HARNESS = "examples/layer_norm.py"


def optimized(x, weight, bias):
    mean = mx.mean(x, axis=-1, keepdims=True)
    d = x - mean
    return d * (mx.rsqrt(mx.mean(d * d, axis=-1, keepdims=True) + 1e-5) * weight) + bias
