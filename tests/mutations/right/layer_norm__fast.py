"""mx.fast.layer_norm for the hand-written LayerNorm."""
import mlx.core as mx

HARNESS = "examples/layer_norm.py"


def optimized(x, weight, bias):
    return mx.fast.layer_norm(x, weight, bias, 1e-5)
