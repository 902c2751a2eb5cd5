"""mx.logsumexp over the last axis and over axis 0 (keepdims), plus a manual log-sum-exp."""
import mlx.core as mx

SHAPES = {"small": (8, 32), "typical": (256, 512), "large": (512, 1024)}


def fn(x):
    a = mx.logsumexp(x, axis=-1)
    b = mx.logsumexp(x, axis=0, keepdims=True)
    m = mx.max(x, axis=-1, keepdims=True)
    c = mx.log(mx.sum(mx.exp(x - m), axis=-1)) + m[:, 0]
    return a - c, b


def input_factory(size_label, seed):
    return (mx.random.normal(SHAPES[size_label], key=mx.random.key(seed)) * 3.0,), {}
