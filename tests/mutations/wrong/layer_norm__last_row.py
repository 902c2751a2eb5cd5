"""LayerNorm, right except the last row, off by 0.1%."""
import mlx.core as mx

HARNESS = "examples/layer_norm.py"


def optimized(x, weight, bias):
    out = mx.fast.layer_norm(x, weight, bias, 1e-5)
    return mx.concatenate([out[..., :-1, :], out[..., -1:, :] * 1.001], axis=-2)
