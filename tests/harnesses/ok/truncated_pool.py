"""Mean-pool whole frames of P only, as frame-stacking audio encoders do: `x[:, :(t // P) * P]`
drops a ragged tail. Every traced length is a multiple of P, so the slice keeps everything
and MLX records none: the program is sound only where that holds, which the module's span
(multiples of the traced lengths' common divisor) keeps it to; the hand sigmoid is the win."""
import mlx.core as mx

P = 4
T = {"small": 16, "typical": 64, "large": 128}


def fn(x):
    t = x.shape[1]
    x = x[:, : (t // P) * P]
    y = x.sum(axis=1) * x.shape[1] ** -0.5
    return mx.exp(y) / (1 + mx.exp(y)) * y


def input_factory(size_label, seed):
    return (mx.random.normal((2, T[size_label], 256), key=mx.random.key(seed)),), {}
