"""Naive grouped-query attention: K/V repeated with mx.repeat, causal mask, softmax by hand."""

import mlx.core as mx

HEADS, KV_HEADS, HEAD_DIM = 8, 2, 64
SHAPES = {"small": (1, 8), "typical": (1, 128), "large": (2, 192)}


def fn(q, k, v):
    groups = q.shape[1] // k.shape[1]
    k = mx.repeat(k, groups, axis=1)
    v = mx.repeat(v, groups, axis=1)
    scores = (q @ k.transpose(0, 1, 3, 2)) * (q.shape[-1] ** -0.5)
    t = q.shape[2]
    idx = mx.arange(t)
    scores = mx.where(idx[:, None] >= idx[None, :], scores, -1e9)
    scores = scores - mx.max(scores, axis=-1, keepdims=True)
    p = mx.exp(scores)
    p = p / mx.sum(p, axis=-1, keepdims=True)
    return p @ v


def input_factory(size_label, seed):
    b, t = SHAPES[size_label]
    kq, kk, kv = mx.random.split(mx.random.key(seed), 3)
    q = mx.random.normal((b, HEADS, t, HEAD_DIM), key=kq)
    k = mx.random.normal((b, KV_HEADS, t, HEAD_DIM), key=kk)
    v = mx.random.normal((b, KV_HEADS, t, HEAD_DIM), key=kv)
    return (q, k, v), {}
