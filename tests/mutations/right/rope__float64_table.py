"""RoPE with the cos/sin tables computed in float64 on the CPU and rounded to float32: closer to exact math than fn."""
import mlx.core as mx

HARNESS = "examples/rope.py"


def optimized(x):
    t, d = x.shape[-2], x.shape[-1]
    half = d // 2
    with mx.stream(mx.cpu):
        inv_freq = 1.0 / (10000.0 ** (mx.arange(0, half, dtype=mx.float64) / half))
        angles = mx.arange(t, dtype=mx.float64)[:, None] * inv_freq[None, :]
        cos, sin = mx.cos(angles).astype(mx.float32), mx.sin(angles).astype(mx.float32)
    x1, x2 = x[..., :half], x[..., half:]
    return mx.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
