"""The kernel benchmark's workloads (RMSNorm, LayerNorm, softmax, SwiGLU's activation),
written by hand as users write them, in float32 or bfloat16, up to 8192 x 8192.
`fast_fn` is the same function through `mx.fast` (where MLX has one): a contender."""
import os

import mlx.core as mx

if os.environ.get("SUPEROPT_SIZES") == "cpu":
    SHAPES = {"small": (16, 256), "typical": (128, 1024), "large": (512, 2048)}
else:
    SHAPES = {"small": (1024, 4096), "typical": (4096, 4096), "large": (8192, 8192)}


def _normal(shape, key, dtype):
    return mx.random.normal(shape, key=key).astype(getattr(mx, dtype))


def rms_norm(dtype):
    def fn(x, w):
        return x * mx.rsqrt(mx.mean(x * x, axis=-1, keepdims=True) + 1e-5) * w

    def fast_fn(x, w):
        return mx.fast.rms_norm(x, w, 1e-5)

    def input_factory(size_label, seed):
        n, d = SHAPES[size_label]
        kx, kw = mx.random.split(mx.random.key(seed))
        return (_normal((n, d), kx, dtype), (1.0 + 0.1 * mx.random.normal((d,), key=kw)).astype(getattr(mx, dtype))), {}

    return fn, fast_fn, input_factory


def layer_norm(dtype):
    def fn(x, w, b):
        mu = mx.mean(x, axis=-1, keepdims=True)
        var = mx.mean((x - mu) ** 2, axis=-1, keepdims=True)
        return (x - mu) * mx.rsqrt(var + 1e-5) * w + b

    def fast_fn(x, w, b):
        return mx.fast.layer_norm(x, w, b, 1e-5)

    def input_factory(size_label, seed):
        n, d = SHAPES[size_label]
        kx, kw, kb = mx.random.split(mx.random.key(seed), 3)
        w = (1.0 + 0.1 * mx.random.normal((d,), key=kw)).astype(getattr(mx, dtype))
        return (_normal((n, d), kx, dtype), w, _normal((d,), kb, dtype)), {}

    return fn, fast_fn, input_factory


def softmax(dtype):
    def fn(x):
        e = mx.exp(x - mx.max(x, axis=-1, keepdims=True))
        return e / mx.sum(e, axis=-1, keepdims=True)

    def fast_fn(x):
        return mx.softmax(x, axis=-1)

    def input_factory(size_label, seed):
        return (2.0 * _normal(SHAPES[size_label], mx.random.key(seed), dtype),), {}

    return fn, fast_fn, input_factory


def swiglu(dtype):
    def fn(a, b):
        return a * mx.sigmoid(a) * b

    def input_factory(size_label, seed):
        ka, kb = mx.random.split(mx.random.key(seed))
        shape = SHAPES[size_label]
        return (_normal(shape, ka, dtype), _normal(shape, kb, dtype)), {}

    return fn, None, input_factory
