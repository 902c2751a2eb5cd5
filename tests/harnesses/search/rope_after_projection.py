"""Queries projected, split into heads with reshape(..., -1) and moved to [B, H, T, D], then
a non-traditional RoPE written out: the positions follow T through the reshape."""
import mlx.core as mx

H, HD = 2, 16
W = mx.random.normal((H * HD, H * HD), key=mx.random.key(5)) * 0.2
SIZES = {"small": 8, "typical": 16, "large": 32}


def fn(x):
    b, t, _ = x.shape
    q = (x @ W.T).reshape(b, t, H, -1).transpose(0, 2, 1, 3)
    half = HD // 2
    inv = 1.0 / (10000.0 ** (mx.arange(half, dtype=mx.float32) / half))
    ang = mx.outer(mx.arange(t, dtype=mx.float32), inv)
    cos, sin = mx.cos(ang), mx.sin(ang)
    q1, q2 = q[..., :half], q[..., half:]
    return mx.concatenate([q1 * cos - q2 * sin, q2 * cos + q1 * sin], axis=-1)


def input_factory(size_label, seed):
    return (mx.random.normal((1, SIZES[size_label], H * HD), key=mx.random.key(seed)),), {}
