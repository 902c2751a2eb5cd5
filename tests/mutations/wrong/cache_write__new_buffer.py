"""The updated buffer built as a new array: the same outputs, the caller's buffer untouched."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/cache_write.py"


def optimized(buf, x):
    new = mx.concatenate([buf[:, :5], mx.tanh(x), buf[:, 6:]], axis=1)
    return mx.sum(mx.sigmoid(new) * new, axis=-1), new
