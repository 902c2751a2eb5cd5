"""LayerNorm with the unbiased (n - 1) variance."""
import mlx.core as mx

HARNESS = "examples/layer_norm.py"


def optimized(x, weight, bias):
    mean = mx.mean(x, axis=-1, keepdims=True)
    var = mx.sum(mx.square(x - mean), axis=-1, keepdims=True) / (x.shape[-1] - 1)
    return (x - mean) / mx.sqrt(var + 1e-5) * weight + bias
