"""Rotary position embedding (non-traditional, base 10000) on (B, H, T, D), tables built inside fn."""

import mlx.core as mx

SHAPES = {"small": (1, 2, 8, 64), "typical": (2, 8, 128, 64), "large": (4, 8, 256, 64)}


def fn(x):
    t, d = x.shape[-2], x.shape[-1]
    half = d // 2
    inv_freq = 1.0 / (10000.0 ** (mx.arange(0, half, dtype=mx.float32) / half))
    angles = mx.arange(t, dtype=mx.float32)[:, None] * inv_freq[None, :]
    cos, sin = mx.cos(angles), mx.sin(angles)
    x1, x2 = x[..., :half], x[..., half:]
    return mx.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


def input_factory(size_label, seed):
    return (mx.random.normal(SHAPES[size_label], key=mx.random.key(seed)),), {}
