"""Llama-style decoder written against the fused MLX primitives.

Nothing in this file should be reported.
"""
import functools
import math
from dataclasses import dataclass
from typing import Optional

import mlx.core as mx
import mlx.nn as nn


@dataclass
class Args:
    dim: int = 2048
    n_layers: int = 16
    n_heads: int = 32
    n_kv_heads: int = 8
    hidden: int = 5632
    vocab: int = 32000
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    window: int = 512


@functools.lru_cache(maxsize=8)
def sliding_window_mask(n: int, offset: int, window: int):
    rinds = mx.arange(offset + n)
    linds = mx.arange(offset, offset + n)
    dist = linds[:, None] - rinds[None]
    return (dist >= 0) & (dist < window)


class RMSNorm(nn.Module):
    def __init__(self, dims: int, eps: float = 1e-5):
        super().__init__()
        self.weight = mx.ones((dims,))
        self.eps = eps

    def __call__(self, x):
        return mx.fast.rms_norm(x, self.weight, self.eps)


class Attention(nn.Module):
    def __init__(self, a: Args, use_window: bool = False):
        super().__init__()
        self.n_heads, self.n_kv = a.n_heads, a.n_kv_heads
        self.head_dim = a.dim // a.n_heads
        self.scale = self.head_dim ** -0.5
        self.use_window = use_window
        self.window = a.window
        self.wq = nn.Linear(a.dim, a.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(a.dim, a.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(a.dim, a.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(a.n_heads * self.head_dim, a.dim, bias=False)
        self.rope = nn.RoPE(self.head_dim, traditional=False, base=a.rope_theta)

    def __call__(self, x, cache=None):
        B, L, _ = x.shape
        q = self.wq(x).reshape(B, L, self.n_heads, -1).transpose(0, 2, 1, 3)
        k = self.wk(x).reshape(B, L, self.n_kv, -1).transpose(0, 2, 1, 3)
        v = self.wv(x).reshape(B, L, self.n_kv, -1).transpose(0, 2, 1, 3)
        offset = 0
        if cache is not None:
            offset = cache[0].shape[2]
            q = self.rope(q, offset=offset)
            k = self.rope(k, offset=offset)
            k = mx.concatenate([cache[0], k], axis=2)
            v = mx.concatenate([cache[1], v], axis=2)
        else:
            q = self.rope(q)
            k = self.rope(k)
        if self.use_window:
            mask = sliding_window_mask(L, offset, self.window)
        else:
            mask = "causal" if L > 1 else None
        out = mx.fast.scaled_dot_product_attention(q, k, v, scale=self.scale, mask=mask)
        out = out.transpose(0, 2, 1, 3).reshape(B, L, -1)
        return self.wo(out), (k, v)


class MLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def __call__(self, x):
        return self.w2(nn.silu(self.w1(x)) * self.w3(x))


class GatedResidual(nn.Module):
    """Highway-style gate: out = x * sigmoid(g(x)) + y * (1 - sigmoid(g(x)))."""

    def __init__(self, dim):
        super().__init__()
        self.g = nn.Linear(dim, dim)

    def __call__(self, x, y):
        gate = self.g(x)
        return x * mx.sigmoid(gate) + y * (1 - mx.sigmoid(gate))


class Block(nn.Module):
    def __init__(self, a: Args, layer_id: int):
        super().__init__()
        self.attn = Attention(a, use_window=(layer_id % 2 == 1))
        self.mlp = MLP(a.dim, a.hidden)
        self.ln1 = RMSNorm(a.dim, a.norm_eps)
        self.ln2 = nn.RMSNorm(a.dim, eps=a.norm_eps)

    def __call__(self, x, cache=None):
        h, cache = self.attn(self.ln1(x), cache)
        x = x + h
        return x + self.mlp(self.ln2(x)), cache


class Llama(nn.Module):
    def __init__(self, a: Args):
        super().__init__()
        self.embed = nn.Embedding(a.vocab, a.dim)
        self.layers = [Block(a, i) for i in range(a.n_layers)]
        self.norm = nn.RMSNorm(a.dim, eps=a.norm_eps)
        self.out = nn.Linear(a.dim, a.vocab, bias=False)
        self.embed_scale = math.sqrt(a.dim)

    def __call__(self, tokens, cache=None):
        h = self.embed(tokens) * self.embed_scale
        if cache is None:
            cache = [None] * len(self.layers)
        for i, layer in enumerate(self.layers):
            h, cache[i] = layer(h, cache[i])
        return self.out(self.norm(h)), cache


def generate(model, prompt: mx.array, max_tokens: int = 64, temp: float = 0.0):
    cache = None
    y = prompt[None]
    out = []
    for _ in range(max_tokens):
        logits, cache = model(y, cache)
        logits = logits[:, -1, :]
        if temp == 0:
            y = mx.argmax(logits, axis=-1, keepdims=True)
        else:
            probs = mx.softmax(logits / temp, axis=-1)
            y = mx.random.categorical(mx.log(probs))[:, None]
        mx.async_eval(y)
        out.append(y)
    return mx.concatenate(out, axis=1)[0].tolist()


def perplexity(model, batches):
    total = mx.array(0.0)
    count = 0
    for toks in batches:
        logits, _ = model(toks[:, :-1])
        total = total + nn.losses.cross_entropy(logits, toks[:, 1:], reduction="sum")
        count += toks[:, 1:].size
    return math.exp(total.item() / count)
