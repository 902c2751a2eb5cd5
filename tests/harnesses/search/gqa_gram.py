"""Gram matrices of keys broadcast from 2 to 8 heads (broadcast + reshape, not repeat)."""
import mlx.core as mx

SIZES = {"small": 16, "typical": 32, "large": 64}


def fn(k):
    b, h, t, d = k.shape
    k8 = mx.broadcast_to(k[:, :, None], (b, h, 4, t, d)).reshape(b, h * 4, t, d)
    return k8 @ k8.swapaxes(-1, -2)


def input_factory(size_label, seed):
    return (mx.random.normal((1, 2, SIZES[size_label], 8), key=mx.random.key(seed)),), {}
