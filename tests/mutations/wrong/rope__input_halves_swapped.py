"""RoPE with the input halves swapped (x1 taken from the upper half, x2 from the lower)."""
import mlx.core as mx

HARNESS = "examples/rope.py"


def optimized(x):
    t, d = x.shape[-2], x.shape[-1]
    half = d // 2
    inv_freq = 1.0 / (10000.0 ** (mx.arange(0, half, dtype=mx.float32) / half))
    angles = (mx.arange(t, dtype=mx.float32))[:, None] * inv_freq[None, :]
    cos, sin = mx.cos(angles), mx.sin(angles)
    x2, x1 = x[..., :half], x[..., half:]
    return mx.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
