"""Causal mask filled with -1e4 instead of -1e9: same on normal inputs, masked keys leak in at 1e4-scale inputs (fn stays finite there)."""
import mlx.core as mx

HARNESS = "examples/gqa_attention.py"


def optimized(q, k, v):
    groups = q.shape[1] // k.shape[1]
    k = mx.repeat(k, groups, axis=1)
    v = mx.repeat(v, groups, axis=1)
    scores = (q @ k.transpose(0, 1, 3, 2)) * (q.shape[-1] ** -0.5)
    idx = mx.arange(q.shape[2])
    scores = mx.where(idx[:, None] >= idx[None, :], scores, -1e4)
    return mx.softmax(scores, axis=-1) @ v
