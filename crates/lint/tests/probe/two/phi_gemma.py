import math

import mlx.core as mx
import mlx.nn as nn
from mlx.core import exp, sqrt


# ---------------------------------------------------------------- helpers


def gemma_rms_norm(x, w, eps=1e-6):
    xf = x.astype(mx.float32)
    ms = xf.square().mean(-1, keepdims=True)
    xf = xf * (ms + eps) ** -0.5
    return (xf * (1.0 + w)).astype(x.dtype)


def phi_layernorm(x, w, b, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=-1, keepdims=True)
    return xc / sqrt(var + eps) * w + b


def gelu_tanh(x):
    c = math.sqrt(2 / math.pi)
    inner = c * (x + 0.044715 * x ** 3)
    return 0.5 * x * (1 + mx.tanh(inner))


def swish(x):
    return x / (1 + exp(-x))


def gated(x, g):
    return x * mx.sigmoid(g)


def rotate_half(x):
    d = x.shape[-1] // 2
    return mx.concatenate([-x[..., d:], x[..., :d]], axis=-1)


def apply_rotary(q, k, cos, sin):
    q_embed = (q * cos) + (rotate_half(q) * sin)
    k_embed = (k * cos) + (rotate_half(k) * sin)
    return q_embed, k_embed


def phi_rope(x, cos, sin, rot_dims):
    x_rot, x_pass = x[..., :rot_dims], x[..., rot_dims:]
    x1 = x_rot[..., : rot_dims // 2]
    x2 = x_rot[..., rot_dims // 2 :]
    rotated = mx.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
    return mx.concatenate([rotated, x_pass], axis=-1)


# ---------------------------------------------------------------- Gemma


class GemmaAttention(nn.Module):
    def __init__(self, dim, n_heads, n_kv, head_dim, base=10000.0):
        super().__init__()
        self.n_heads, self.n_kv, self.head_dim = n_heads, n_kv, head_dim
        self.base = base
        self.scale = head_dim ** -0.5
        self.q_proj = nn.Linear(dim, n_heads * head_dim, bias=False)
        self.k_proj = nn.Linear(dim, n_kv * head_dim, bias=False)
        self.v_proj = nn.Linear(dim, n_kv * head_dim, bias=False)
        self.o_proj = nn.Linear(n_heads * head_dim, dim, bias=False)

    def __call__(self, x, cache=None):
        B, L, _ = x.shape
        q = self.q_proj(x).reshape(B, L, self.n_heads, self.head_dim).transpose(0, 2, 1, 3)
        k = self.k_proj(x).reshape(B, L, self.n_kv, self.head_dim).transpose(0, 2, 1, 3)
        v = self.v_proj(x).reshape(B, L, self.n_kv, self.head_dim).transpose(0, 2, 1, 3)
        offset = 0 if cache is None else cache[0].shape[2]

        inv_freq = 1.0 / (self.base ** (mx.arange(0, self.head_dim, 2, dtype=mx.float32) / self.head_dim))
        t = mx.arange(offset, offset + L, dtype=mx.float32)
        freqs = t[:, None] * inv_freq[None, :]
        emb = mx.concatenate([freqs, freqs], axis=-1)
        cos, sin = mx.cos(emb), mx.sin(emb)
        q, k = apply_rotary(q, k, cos, sin)

        if cache is not None:
            k = mx.concatenate([cache[0], k], axis=2)
            v = mx.concatenate([cache[1], v], axis=2)
        new_cache = (k, v)

        n_rep = self.n_heads // self.n_kv
        k = mx.repeat(k, n_rep, axis=1)
        v = mx.repeat(v, n_rep, axis=1)

        S = k.shape[2]
        mask = mx.tril(mx.ones((L, S), dtype=mx.bool_), k=S - L)
        scores = (q @ k.transpose(0, 1, 3, 2)) * self.scale
        scores = mx.where(mask, scores, -1e9)
        probs = mx.softmax(scores.astype(mx.float32), axis=-1).astype(q.dtype)
        out = probs @ v
        out = out.transpose(0, 2, 1, 3).reshape(B, L, -1)
        return self.o_proj(out), new_cache


class GemmaMLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def __call__(self, x):
        return self.down_proj(gelu_tanh(self.gate_proj(x)) * self.up_proj(x))


class GemmaBlock(nn.Module):
    def __init__(self, dim, n_heads, n_kv, head_dim, hidden):
        super().__init__()
        self.attn = GemmaAttention(dim, n_heads, n_kv, head_dim)
        self.mlp = GemmaMLP(dim, hidden)
        self.ln1 = mx.zeros((dim,))
        self.ln2 = mx.zeros((dim,))

    def __call__(self, x, cache=None):
        h, cache = self.attn(gemma_rms_norm(x, self.ln1), cache)
        x = x + h
        return x + self.mlp(gemma_rms_norm(x, self.ln2)), cache


# ---------------------------------------------------------------- Phi-2


class PhiBlock(nn.Module):
    def __init__(self, dim=2560, n_heads=32, rot_dims=32, max_len=2048):
        super().__init__()
        self.n_heads = n_heads
        self.rot_dims = rot_dims
        self.ln_w = mx.ones((dim,))
        self.ln_b = mx.zeros((dim,))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.dense = nn.Linear(dim, dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.gate = nn.Linear(dim, dim)
        inv = 1.0 / (10000.0 ** (mx.arange(0, rot_dims, 2, dtype=mx.float32) / rot_dims))
        ang = mx.arange(max_len, dtype=mx.float32)[:, None] * inv[None, :]
        self._cos, self._sin = mx.cos(ang), mx.sin(ang)
        self._causal = nn.MultiHeadAttention.create_additive_causal_mask(max_len)

    def __call__(self, x):
        B, L, D = x.shape
        h = phi_layernorm(x, self.ln_w, self.ln_b)
        q, k, v = mx.split(self.qkv(h), 3, axis=-1)
        q, k, v = (t.reshape(B, L, self.n_heads, -1).transpose(0, 2, 1, 3) for t in (q, k, v))
        cos, sin = self._cos[:L], self._sin[:L]
        q = phi_rope(q, cos, sin, self.rot_dims)
        k = phi_rope(k, cos, sin, self.rot_dims)
        o = mx.fast.scaled_dot_product_attention(
            q, k, v, scale=q.shape[-1] ** -0.5, mask=self._causal[:L, :L].astype(q.dtype)
        )
        o = self.dense(o.transpose(0, 2, 1, 3).reshape(B, L, D))
        ff = self.fc2(gelu_tanh(self.fc1(h)))
        ff = gated(ff, self.gate(h))
        ff = ff + self.fc2(swish(self.fc1(h)))
        return x + o + ff
