"""A transpose round trip through mx.contiguous, which MLX 0.32 cannot export."""
import mlx.core as mx

SHAPES = {"small": (2, 4, 8, 16), "typical": (4, 8, 64, 32), "large": (8, 8, 128, 32)}


def fn(y):
    z = mx.contiguous(y.swapaxes(1, 2)).swapaxes(1, 2)
    return z.reshape(z.shape[0], -1) * 2.0


def input_factory(size_label, seed):
    return (mx.random.normal(SHAPES[size_label], key=mx.random.key(seed)),), {}
