"""Non-traditional RoPE written out, base 10000, positions from 0."""
import mlx.core as mx

SIZES = {"small": 8, "typical": 16, "large": 32}


def fn(x):
    t, d = x.shape[-2], x.shape[-1]
    inv = 10000.0 ** (-mx.arange(0, d // 2, dtype=mx.float32) / (d // 2))
    ang = mx.arange(t, dtype=mx.float32)[:, None] * inv[None, :]
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return mx.concatenate([x1 * mx.cos(ang) - x2 * mx.sin(ang), x2 * mx.cos(ang) + x1 * mx.sin(ang)], axis=-1)


def input_factory(size_label, seed):
    return (mx.random.normal((1, 2, SIZES[size_label], 16), key=mx.random.key(seed)),), {}
