"""RMSNorm as PyTorch ports write it for bfloat16 models: normalized in float32, cast back to
the input's dtype, then times the weight."""
import mlx.core as mx

D = 64
W = (1.0 + 0.1 * mx.random.normal((D,), key=mx.random.key(3))).astype(mx.bfloat16)
ROWS = {"small": 4, "typical": 32, "large": 128}


def fn(x):
    h = x.astype(mx.float32)
    h = h * mx.rsqrt(mx.mean(h * h, axis=-1, keepdims=True) + 1e-6)
    return W * h.astype(x.dtype)


def input_factory(size_label, seed):
    return (mx.random.normal((ROWS[size_label], D), key=mx.random.key(seed)).astype(mx.bfloat16),), {}
