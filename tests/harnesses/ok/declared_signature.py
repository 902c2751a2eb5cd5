"""fn declares positional-only, keyword and defaulted parameters; the factory passes some by
keyword and leaves others at their defaults (literal ones, and one no module can spell)."""
import mlx.core as mx

W = 1 + 0.1 * mx.random.normal((256,), key=mx.random.key(41))
ROWS = {"small": 8, "typical": 256, "large": 1024}


def fn(x, weight=W, bias=None, /, scale=1.0, *, axis=-1, mode="softmax", extra=None):
    if mode != "softmax":
        return x * weight
    e = mx.exp(x - mx.max(x, axis=axis, keepdims=True))
    y = e / mx.sum(e, axis=axis, keepdims=True) * weight * scale
    y = y if bias is None else y + bias
    return y if extra is None else y + extra


def input_factory(size_label, seed):
    x = mx.random.normal((ROWS[size_label], 256), key=mx.random.key(seed))
    return (x,), {"scale": 2.0, "axis": -1}
