"""The same choices, the weighted sum as an einsum (other rounding)."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/router.py"
TOP_K = 4


def optimized(x, w, v):
    scores = (x @ w).astype(mx.bfloat16)
    inds = mx.argpartition(-scores, kth=TOP_K - 1, axis=-1)[:, :TOP_K]
    gates = mx.take_along_axis(mx.softmax(scores.astype(mx.float32), axis=-1), inds, axis=-1)
    return mx.einsum("nk,nkd->nd", gates, v[inds])
