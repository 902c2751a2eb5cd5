"""Mistral with sliding-window attention, HF-style module names."""
import math

import mlx.core as mx
import mlx.nn as nn


class MistralRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = mx.ones((hidden_size,))
        self.variance_epsilon = eps

    def __call__(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.astype(mx.float32)
        variance = mx.mean(hidden_states ** 2, axis=-1, keepdims=True)
        hidden_states = hidden_states * (variance + self.variance_epsilon) ** -0.5
        return self.weight * hidden_states.astype(input_dtype)


class MistralRotaryEmbedding:
    def __init__(self, dim, base=1e6):
        self.dim = dim
        self.base = base

    def __call__(self, x, offset=0):
        L = x.shape[-2]
        exponent = mx.arange(0, self.dim, 2).astype(mx.float64) / self.dim
        inv_freq = mx.exp(-math.log(self.base) * exponent)
        pos = mx.arange(offset, offset + L).astype(mx.float32)
        ang = pos[:, None] * inv_freq[None, :].astype(mx.float32)
        return mx.cos(ang), mx.sin(ang)


def apply_rope(x, cos, sin):
    d = x.shape[-1] // 2
    x1 = x[..., :d]
    x2 = x[..., d:]
    rot_1 = x1 * cos - x2 * sin
    rot_2 = x1 * sin + x2 * cos
    return mx.concatenate([rot_1, rot_2], axis=-1)


class MistralAttention(nn.Module):
    def __init__(self, hidden_size=4096, num_heads=32, num_kv_heads=8, window=4096):
        super().__init__()
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = hidden_size // num_heads
        self.scale = self.head_dim ** -0.5
        self.window = window
        self.q_proj = nn.Linear(hidden_size, num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(hidden_size, num_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(hidden_size, num_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(num_heads * self.head_dim, hidden_size, bias=False)
        self.rotary = MistralRotaryEmbedding(self.head_dim)

    def __call__(self, x, cache=None):
        B, L, _ = x.shape
        queries = self.q_proj(x).reshape(B, L, self.num_heads, -1).transpose(0, 2, 1, 3)
        keys = self.k_proj(x).reshape(B, L, self.num_kv_heads, -1).transpose(0, 2, 1, 3)
        values = self.v_proj(x).reshape(B, L, self.num_kv_heads, -1).transpose(0, 2, 1, 3)

        offset = 0 if cache is None else cache.offset
        cos, sin = self.rotary(queries, offset)
        queries = apply_rope(queries, cos, sin)
        keys = apply_rope(keys, cos, sin)
        if cache is not None:
            keys, values = cache.update_and_fetch(keys, values)

        S = keys.shape[2]
        rows = mx.arange(offset, offset + L)[:, None]
        cols = mx.arange(S)[None, :]
        allowed = (cols <= rows) & (cols > rows - self.window)
        mask = mx.where(allowed, 0.0, -mx.inf).astype(queries.dtype)

        groups = self.num_heads // self.num_kv_heads
        keys = mx.broadcast_to(
            keys[:, :, None], (B, self.num_kv_heads, groups, S, self.head_dim)
        ).reshape(B, self.num_heads, S, self.head_dim)
        values = mx.broadcast_to(
            values[:, :, None], (B, self.num_kv_heads, groups, S, self.head_dim)
        ).reshape(B, self.num_heads, S, self.head_dim)

        out = mx.fast.scaled_dot_product_attention(
            queries, keys, values, scale=self.scale, mask=mask
        )
        out = out.transpose(0, 2, 1, 3).reshape(B, L, -1)
        return self.o_proj(out)
