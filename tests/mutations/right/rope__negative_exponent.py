"""RoPE with inv_freq as 10000 ** (-i / half) instead of 1 / 10000 ** (i / half): as accurate against exact math, rounded differently."""
import mlx.core as mx

HARNESS = "examples/rope.py"


def optimized(x):
    t, d = x.shape[-2], x.shape[-1]
    half = d // 2
    inv_freq = 10000.0 ** (-mx.arange(0, half, dtype=mx.float32) / half)
    angles = mx.arange(t, dtype=mx.float32)[:, None] * inv_freq[None, :]
    cos, sin = mx.cos(angles), mx.sin(angles)
    x1, x2 = x[..., :half], x[..., half:]
    return mx.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
