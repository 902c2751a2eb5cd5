"""LayerNorm with eps 1e-4 instead of 1e-5."""
import mlx.core as mx

HARNESS = "examples/layer_norm.py"


def optimized(x, weight, bias):
    mean = mx.mean(x, axis=-1, keepdims=True)
    var = mx.mean(mx.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) / mx.sqrt(var + 1e-4) * weight + bias
