"""DiT (diffusion transformer) block, MLX port."""
import math

import mlx.core as mx
import mlx.nn as nn


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


def layer_norm_no_affine(x, eps=1e-6):
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) * mx.rsqrt(var + eps)


def gelu_tanh(x):
    inner = 0.7978845608028654 * (x + 0.044715 * x * x * x)
    return 0.5 * x * (1.0 + mx.tanh(inner))


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden_size, freq_dim=256):
        super().__init__()
        self.freq_dim = freq_dim
        self.fc1 = nn.Linear(freq_dim, hidden_size)
        self.fc2 = nn.Linear(hidden_size, hidden_size)

    def __call__(self, t, max_period=10000):
        half = self.freq_dim // 2
        freqs = mx.exp(-math.log(max_period) * mx.arange(0, half, dtype=mx.float32) / half)
        args = t[:, None].astype(mx.float32) * freqs[None]
        emb = mx.concatenate([mx.cos(args), mx.sin(args)], axis=-1)
        h = self.fc1(emb)
        h = h * (1 / (1 + mx.exp(-h)))
        return self.fc2(h)


class DiTAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def __call__(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim)
        qkv = qkv.transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scale = 1.0 / math.sqrt(self.head_dim)
        logits = mx.einsum("bhnd,bhmd->bhnm", q, k) * scale
        weights = mx.exp(logits - logits.max(axis=-1, keepdims=True))
        weights = weights / weights.sum(axis=-1, keepdims=True)
        out = mx.einsum("bhnm,bhmd->bhnd", weights, v)
        out = out.transpose(0, 2, 1, 3).reshape(B, N, C)
        return self.proj(out)


class DiTBlock(nn.Module):
    def __init__(self, hidden_size, num_heads, mlp_ratio=4.0):
        super().__init__()
        self.attn = DiTAttention(hidden_size, num_heads)
        mlp_hidden = int(hidden_size * mlp_ratio)
        self.fc1 = nn.Linear(hidden_size, mlp_hidden)
        self.fc2 = nn.Linear(mlp_hidden, hidden_size)
        self.adaLN = nn.Linear(hidden_size, 6 * hidden_size)

    def __call__(self, x, c):
        c = c * mx.sigmoid(c)
        mods = mx.split(self.adaLN(c), 6, axis=1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods
        x = x + gate_msa[:, None] * self.attn(modulate(layer_norm_no_affine(x), shift_msa, scale_msa))
        h = modulate(layer_norm_no_affine(x), shift_mlp, scale_mlp)
        h = self.fc2(gelu_tanh(self.fc1(h)))
        return x + gate_mlp[:, None] * h


class FinalLayer(nn.Module):
    def __init__(self, hidden_size, num_classes):
        super().__init__()
        self.head = nn.Linear(hidden_size, num_classes)

    def __call__(self, x):
        logits = self.head(x.mean(axis=1))
        probs = mx.exp(logits - mx.max(logits, axis=-1, keepdims=True))
        return probs / mx.sum(probs, axis=-1, keepdims=True)
