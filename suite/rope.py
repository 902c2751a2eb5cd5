"""Non-traditional RoPE by hand on (B, H, T, D), tables built every call."""
import mlx.core as mx
from _sizes import pick

SHAPES = pick({"small": (1, 32, 128, 128), "typical": (1, 32, 2048, 128), "large": (4, 32, 4096, 128)},
              {"small": (1, 4, 16, 64), "typical": (1, 8, 128, 64), "large": (2, 8, 512, 64)})


def fn(x):
    t, d = x.shape[-2], x.shape[-1]
    half = d // 2
    inv = 1.0 / (10000.0 ** (mx.arange(0, half, dtype=mx.float32) / half))
    ang = mx.arange(t, dtype=mx.float32)[:, None] * inv[None, :]
    c, s = mx.cos(ang), mx.sin(ang)
    x1, x2 = x[..., :half], x[..., half:]
    return mx.concatenate([x1 * c - x2 * s, x1 * s + x2 * c], axis=-1)


def input_factory(size_label, seed):
    return (mx.random.normal(SHAPES[size_label], key=mx.random.key(seed)),), {}
