"""The buffer written in place as fn writes it, the hand sigmoid as mx.sigmoid (other rounding)."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/cache_write.py"


def optimized(buf, x):
    buf[:, 5:6, :] = mx.tanh(x)
    return mx.sum(mx.sigmoid(buf) * buf, axis=-1), buf
