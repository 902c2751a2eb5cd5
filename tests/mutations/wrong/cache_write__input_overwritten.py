"""The right buffer update, but x is overwritten with its tanh in place on the way: fn leaves
x as it was, and a caller reading x again gets other values."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/cache_write.py"


def optimized(buf, x):
    x[...] = mx.tanh(x)
    buf[:, 5:6, :] = x
    return mx.sum(mx.sigmoid(buf) * buf, axis=-1), buf
