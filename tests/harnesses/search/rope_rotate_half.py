"""RoPE as Hugging Face ports write it: x * cos(emb) + rotate_half(x) * sin(emb), the table
repeated for both halves and built in the call."""
import mlx.core as mx

SHAPES = {"small": (1, 2, 8, 32), "typical": (1, 4, 16, 32), "large": (2, 4, 32, 32)}


def rotate_half(x):
    h = x.shape[-1] // 2
    return mx.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def fn(x):
    t, d = x.shape[-2], x.shape[-1]
    inv_freq = 1.0 / (10000.0 ** (mx.arange(0, d, 2, dtype=mx.float32) / d))
    freqs = mx.arange(t, dtype=mx.float32)[:, None] * inv_freq[None, :]
    emb = mx.concatenate([freqs, freqs], axis=-1)
    return x * mx.cos(emb) + rotate_half(x) * mx.sin(emb)


def input_factory(size_label, seed):
    return (mx.random.normal(SHAPES[size_label], key=mx.random.key(seed)),), {}
