"""Llama-style decoder on the fused mx.fast ops -- the reference we diff against."""
import math
from functools import lru_cache

import mlx.core as mx
import mlx.nn as nn


@lru_cache(maxsize=8)
def causal_mask(n: int):
    idx = mx.arange(n)
    return mx.where(idx[:, None] >= idx[None, :], 0.0, -1e9)


class RMSNorm(nn.Module):
    def __init__(self, dims, eps=1e-5):
        super().__init__()
        self.weight = mx.ones((dims,))
        self.eps = eps

    def __call__(self, x):
        return mx.fast.rms_norm(x, self.weight, self.eps)


class LayerNorm(nn.Module):
    def __init__(self, dims, eps=1e-5):
        super().__init__()
        self.weight = mx.ones((dims,))
        self.bias = mx.zeros((dims,))
        self.eps = eps

    def __call__(self, x):
        return mx.fast.layer_norm(x, self.weight, self.bias, self.eps)


class Attention(nn.Module):
    def __init__(self, dims, n_heads, n_kv_heads, rope_base=10000.0):
        super().__init__()
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.head_dim = dims // n_heads
        self.scale = self.head_dim ** -0.5
        self.rope_base = rope_base
        self.q_proj = nn.Linear(dims, n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(dims, n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(dims, n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(n_heads * self.head_dim, dims, bias=False)

    def _rope(self, x, offset):
        return mx.fast.rope(x, self.head_dim, traditional=False, base=self.rope_base,
                            scale=1.0, offset=offset)

    def __call__(self, x, mask=None, cache=None):
        B, L, _ = x.shape
        q = self.q_proj(x).reshape(B, L, self.n_heads, -1).transpose(0, 2, 1, 3)
        k = self.k_proj(x).reshape(B, L, self.n_kv_heads, -1).transpose(0, 2, 1, 3)
        v = self.v_proj(x).reshape(B, L, self.n_kv_heads, -1).transpose(0, 2, 1, 3)
        offset = 0
        if cache is not None:
            offset = cache[0].shape[2]
        q = self._rope(q, offset)
        k = self._rope(k, offset)
        if cache is not None:
            k = mx.concatenate([cache[0], k], axis=2)
            v = mx.concatenate([cache[1], v], axis=2)
        out = mx.fast.scaled_dot_product_attention(q, k, v, scale=self.scale, mask=mask)
        out = out.transpose(0, 2, 1, 3).reshape(B, L, -1)
        return self.o_proj(out), (k, v)


class MLP(nn.Module):
    def __init__(self, dims, hidden):
        super().__init__()
        self.gate_proj = nn.Linear(dims, hidden, bias=False)
        self.up_proj = nn.Linear(dims, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dims, bias=False)

    def __call__(self, x):
        return self.down_proj(nn.silu(self.gate_proj(x)) * self.up_proj(x))


class SigmoidGLU(nn.Module):
    def __init__(self, dims, hidden):
        super().__init__()
        self.value = nn.Linear(dims, hidden)
        self.gate = nn.Linear(dims, hidden)
        self.out = nn.Linear(hidden, dims)

    def __call__(self, x):
        return self.out(self.value(x) * mx.sigmoid(self.gate(x)))


class TimestepEmbedding(nn.Module):
    def __init__(self, dim, max_period=10000):
        super().__init__()
        half = dim // 2
        self._freqs = mx.exp(-math.log(max_period) * mx.arange(half, dtype=mx.float32) / half)
        self.mlp1 = nn.Linear(dim, 4 * dim)
        self.mlp2 = nn.Linear(4 * dim, dim)

    def __call__(self, t):
        args = t[:, None].astype(mx.float32) * self._freqs[None]
        emb = mx.concatenate([mx.cos(args), mx.sin(args)], axis=-1)
        return self.mlp2(nn.gelu(self.mlp1(emb)))


class Router(nn.Module):
    def __init__(self, dims, n_experts, top_k=2):
        super().__init__()
        self.gate = nn.Linear(dims, n_experts, bias=False)
        self.top_k = top_k

    def __call__(self, x):
        probs = mx.softmax(self.gate(x), axis=-1, precise=True)
        inds = mx.argpartition(-probs, kth=self.top_k - 1, axis=-1)[..., : self.top_k]
        w = mx.take_along_axis(probs, inds, axis=-1)
        w = w / w.sum(axis=-1, keepdims=True)
        return inds, w


class Block(nn.Module):
    def __init__(self, dims, n_heads, n_kv_heads, hidden):
        super().__init__()
        self.attn = Attention(dims, n_heads, n_kv_heads)
        self.mlp = MLP(dims, hidden)
        self.ln1 = RMSNorm(dims)
        self.ln2 = RMSNorm(dims)

    def __call__(self, x, mask=None, cache=None):
        h, cache = self.attn(self.ln1(x), mask, cache)
        x = x + h
        return x + self.mlp(self.ln2(x)), cache


class Llama(nn.Module):
    def __init__(self, vocab=32000, dims=2048, layers=16, n_heads=32, n_kv_heads=8):
        super().__init__()
        self.embed = nn.Embedding(vocab, dims)
        self.layers = [Block(dims, n_heads, n_kv_heads, 4 * dims) for _ in range(layers)]
        self.norm = RMSNorm(dims)

    def __call__(self, tokens, cache=None):
        x = self.embed(tokens)
        L = x.shape[1]
        mask = causal_mask(L).astype(x.dtype) if L > 1 and cache is None else None
        cache = cache or [None] * len(self.layers)
        for i, layer in enumerate(self.layers):
            x, cache[i] = layer(x, mask, cache[i])
        return self.embed.as_linear(self.norm(x)), cache


def log_softmax(logits):
    return logits - mx.logsumexp(logits, axis=-1, keepdims=True)


def l1_normalize(x):
    a = mx.abs(x)
    return a / a.sum(axis=-1, keepdims=True)


def lora_demo():
    x = mx.random.normal((2, 512, 4096))
    lora_a = mx.random.normal((4096, 8)) * 0.01
    lora_b = mx.zeros((8, 4096))
    return x @ lora_a @ lora_b


def activation_rms(h):
    # logged per layer, not used to normalise anything
    return mx.sqrt(mx.mean(h.astype(mx.float32) ** 2))
