"""Attention with its 1/sqrt(d) scale doubled (2/sqrt(d))."""
import mlx.core as mx

HARNESS = "examples/gqa_attention.py"


def optimized(q, k, v):
    groups = q.shape[1] // k.shape[1]
    k = mx.repeat(k, groups, axis=1)
    v = mx.repeat(v, groups, axis=1)
    scores = (q @ k.transpose(0, 1, 3, 2)) * (2.0 * q.shape[-1] ** -0.5)
    idx = mx.arange(q.shape[2])
    scores = mx.where(idx[:, None] >= idx[None, :], scores, -1e9)
    return mx.softmax(scores, axis=-1) @ v
