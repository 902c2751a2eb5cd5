"""The router's scores kept in float32: float64's choices where bfloat16 ties, not fn's."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/router.py"
TOP_K = 4


def optimized(x, w, v):
    scores = x @ w
    inds = mx.argpartition(-scores, kth=TOP_K - 1, axis=-1)[:, :TOP_K]
    gates = mx.take_along_axis(mx.softmax(scores.astype(mx.bfloat16).astype(mx.float32), axis=-1), inds, axis=-1)
    return (gates[..., None] * v[inds]).sum(axis=1)
