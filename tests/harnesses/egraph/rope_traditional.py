"""Traditional (interleaved) RoPE by hand, positions starting at 16, base 500000."""
import mlx.core as mx

SHAPES = {"small": (1, 4, 16, 64), "typical": (1, 8, 256, 64), "large": (2, 8, 512, 64)}


def fn(x):
    t, d = x.shape[-2], x.shape[-1]
    freqs = mx.exp(-mx.arange(0, d, 2, dtype=mx.float32) * (mx.log(mx.array(500000.0)) / d))
    ang = (16 + mx.arange(t, dtype=mx.float32))[:, None] * freqs[None, :]
    c, s = mx.cos(ang), mx.sin(ang)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return mx.stack([x1 * c - x2 * s, x1 * s + x2 * c], axis=-1).reshape(x.shape)


def input_factory(size_label, seed):
    return (mx.random.normal(SHAPES[size_label], key=mx.random.key(seed)),), {}
