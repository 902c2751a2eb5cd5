"""GQA attention with the 1/sqrt(d) scale applied to q before the product ((q*s) @ k^T for (q @ k^T)*s)."""
import mlx.core as mx

HARNESS = "examples/gqa_attention.py"


def optimized(q, k, v):
    groups = q.shape[1] // k.shape[1]
    k = mx.repeat(k, groups, axis=1)
    v = mx.repeat(v, groups, axis=1)
    scores = (q * (q.shape[-1] ** -0.5)) @ k.transpose(0, 1, 3, 2)
    idx = mx.arange(q.shape[2])
    scores = mx.where(idx[:, None] >= idx[None, :], scores, -1e9)
    return mx.softmax(scores, axis=-1) @ v
