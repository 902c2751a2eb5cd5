"""Parameters named as the emitted module's own names (`h`, `key`, `out`, `t0`, `tuple`), and slices MLX records with negative stops (`x[:-1]`, `x[::-1]`, `x[-3:-1]`)."""
import mlx.core as mx


def fn(h, t0, out, *, key, tuple=1.0):
    w = 1.0 + key  # weight-only work: hoisted
    y = h * mx.rsqrt(mx.mean(h * h, axis=-1, keepdims=True) + 1e-6) * w
    shifted = mx.concatenate([mx.zeros_like(y[:, :1]), y[:, :-1]], axis=1)
    tail = y[:, ::-1][:, -3:-1] + t0[:, 5:1:-1][:, :2]
    return shifted * out + tuple, tail


def input_factory(size_label, seed):
    rows, d = {"small": (4, 16), "typical": (8, 32), "large": (16, 64)}[size_label]
    k = mx.random.split(mx.random.key(seed), 4)
    h = mx.random.normal((rows, d), key=k[0])
    t0 = mx.random.normal((rows, d), key=k[1])
    out = mx.random.normal((rows, d), key=k[2])
    key = mx.random.normal((d,), key=k[3])
    return (h, t0, out), {"key": key, "tuple": 2.0}
