"""Exponential moving average over a time-major signal x [T, B, D] (loop over axis 0, per-step
input x[t]); smoothing factor alpha per channel (last axis)."""
import mlx.core as mx


def fn(x, alpha):
    s = x[0]
    outs = [s]
    for t in range(1, x.shape[0]):
        s = alpha * x[t] + (1.0 - alpha) * s
        outs.append(s)
    return mx.stack(outs)


def input_factory(size_label, seed):
    T = {"small": 16, "typical": 24, "large": 32}[size_label]
    k1, k2 = mx.random.split(mx.random.key(seed))
    x = mx.random.normal((T, 8, 64), key=k1)
    alpha = mx.sigmoid(mx.random.normal((64,), key=k2))
    return (x, alpha), {}
