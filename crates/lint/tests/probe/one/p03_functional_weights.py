"""Functional forward pass over a flat weight dict loaded from safetensors.

No nn.Module on purpose: makes it easy to swap weights for experiments.
"""
import math

from mlx import core as mx

N_HEADS = 16
HEAD_DIM = 64


def rms_norm(x, w, eps=1e-6):
    ms = mx.mean(mx.power(x, 2), axis=-1, keepdims=True)
    return w * (x * (1 / mx.sqrt(ms + eps)))


def silu(x):
    return x / (1 + mx.exp(-x))


def gelu(x):
    return 0.5 * x * (1 + mx.erf(x / math.sqrt(2)))


def rope(x, positions, base=10000.0):
    d = x.shape[-1]
    freqs = base ** (-mx.arange(0, d, 2).astype(mx.float32) / d)
    angles = positions[:, None] * freqs[None, :]
    cos = mx.cos(angles)
    sin = mx.sin(angles)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return mx.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def softmax(x, axis=-1):
    e = mx.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def attention(q, k, v, mask=None):
    scale = q.shape[-1] ** -0.5
    s = mx.matmul(q, mx.swapaxes(k, -1, -2)) * scale
    if mask is not None:
        s = s + mask
    p = softmax(s)
    return mx.matmul(p, v)


def block(x, W, i, positions, mask):
    p = f"layers.{i}."
    h = rms_norm(x, W[p + "attn_norm"])
    B, L, _ = h.shape
    q = (h @ W[p + "wq"].T).reshape(B, L, N_HEADS, HEAD_DIM).swapaxes(1, 2)
    k = (h @ W[p + "wk"].T).reshape(B, L, N_HEADS, HEAD_DIM).swapaxes(1, 2)
    v = (h @ W[p + "wv"].T).reshape(B, L, N_HEADS, HEAD_DIM).swapaxes(1, 2)
    q = rope(q, positions)
    k = rope(k, positions)
    a = attention(q, k, v, mask).swapaxes(1, 2).reshape(B, L, -1)
    x = x + a @ W[p + "wo"].T
    h = rms_norm(x, W[p + "ffn_norm"])
    up = gelu(h @ W[p + "w_up"].T) if W.get("use_gelu") is not None else silu(h @ W[p + "w1"].T)
    x = x + (up * (h @ W[p + "w3"].T)) @ W[p + "w2"].T
    return x


def forward(tokens, W, n_layers=24):
    L = tokens.shape[-1]
    positions = mx.arange(L).astype(mx.float32)
    mask = mx.tril(mx.ones((L, L)))
    mask = mx.where(mask == 0, float("-inf"), 0.0)
    x = W["embed"][tokens]
    for i in range(n_layers):
        x = block(x, W, i, positions, mask)
    x = rms_norm(x, W["norm"])
    return x @ W["embed"].T
