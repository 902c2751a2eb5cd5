"""RoPE with the angle table in float16 (cast back to float32): a silently narrowed dtype."""
import mlx.core as mx

HARNESS = "examples/rope.py"


def optimized(x):
    t, d = x.shape[-2], x.shape[-1]
    half = d // 2
    inv_freq = 1.0 / (10000.0 ** (mx.arange(0, half, dtype=mx.float32) / half))
    angles = (mx.arange(t, dtype=mx.float32)[:, None] * inv_freq[None, :]).astype(mx.float16).astype(mx.float32)
    cos, sin = mx.cos(angles), mx.sin(angles)
    x1, x2 = x[..., :half], x[..., half:]
    return mx.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
