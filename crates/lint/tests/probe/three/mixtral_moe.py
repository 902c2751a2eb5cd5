"""Mixtral-8x7B style decoder, a line-by-line port of HF modeling_mixtral.py."""
import math
from dataclasses import dataclass

import numpy as np
import mlx.core as mx
import mlx.nn as nn


@dataclass
class Config:
    hidden_size: int = 4096
    intermediate_size: int = 14336
    num_attention_heads: int = 32
    num_key_value_heads: int = 8
    num_local_experts: int = 8
    num_experts_per_tok: int = 2
    num_hidden_layers: int = 32
    vocab_size: int = 32000
    rope_theta: float = 1e6
    rms_norm_eps: float = 1e-5


class MixtralRMSNorm(nn.Module):
    def __init__(self, dims, eps):
        super().__init__()
        self.weight = mx.ones((dims,))
        self.eps = eps

    def __call__(self, x):
        return self.weight * (x / mx.sqrt(mx.mean(x * x, axis=-1, keepdims=True) + self.eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return mx.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    q_embed = (q * cos) + (rotate_half(q) * sin)
    k_embed = (k * cos) + (rotate_half(k) * sin)
    return q_embed, k_embed


class MixtralRotaryEmbedding:
    def __init__(self, dim, base):
        self.dim = dim
        self.base = base

    def __call__(self, seq_len, offset=0):
        inv_freq = 1.0 / (self.base ** (mx.arange(0, self.dim, 2).astype(mx.float32) / self.dim))
        t = mx.arange(offset, offset + seq_len).astype(mx.float32)
        freqs = mx.outer(t, inv_freq)
        emb = mx.concatenate([freqs, freqs], axis=-1)
        return mx.cos(emb), mx.sin(emb)


class MixtralAttention(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.num_heads = cfg.num_attention_heads
        self.num_kv_heads = cfg.num_key_value_heads
        self.head_dim = cfg.hidden_size // self.num_heads
        self.q_proj = nn.Linear(cfg.hidden_size, self.num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_size, self.num_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_size, self.num_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, cfg.hidden_size, bias=False)
        self.rotary_emb = MixtralRotaryEmbedding(self.head_dim, cfg.rope_theta)

    def __call__(self, x, mask=None, cache=None):
        bsz, q_len, _ = x.shape
        q = self.q_proj(x).reshape(bsz, q_len, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)
        k = self.k_proj(x).reshape(bsz, q_len, self.num_kv_heads, self.head_dim).transpose(0, 2, 1, 3)
        v = self.v_proj(x).reshape(bsz, q_len, self.num_kv_heads, self.head_dim).transpose(0, 2, 1, 3)

        offset = 0 if cache is None else cache[0].shape[2]
        cos, sin = self.rotary_emb(q_len, offset)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        if cache is not None:
            k = mx.concatenate([cache[0], k], axis=2)
            v = mx.concatenate([cache[1], v], axis=2)
        new_cache = (k, v)

        n_rep = self.num_heads // self.num_kv_heads
        kv_len = k.shape[2]
        k = mx.broadcast_to(k[:, :, None], (bsz, self.num_kv_heads, n_rep, kv_len, self.head_dim))
        k = k.reshape(bsz, self.num_heads, kv_len, self.head_dim)
        v = mx.tile(v[:, :, None], (1, 1, n_rep, 1, 1)).reshape(bsz, self.num_heads, kv_len, self.head_dim)

        attn_weights = mx.matmul(q, k.transpose(0, 1, 3, 2)) / math.sqrt(self.head_dim)
        if mask is not None:
            attn_weights = attn_weights + mask
        attn_weights = mx.softmax(attn_weights.astype(mx.float32), axis=-1).astype(q.dtype)
        attn_output = mx.matmul(attn_weights, v)
        attn_output = attn_output.transpose(0, 2, 1, 3).reshape(bsz, q_len, -1)
        return self.o_proj(attn_output), new_cache


class MixtralBlockSparseTop2MLP(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.w1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.w2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)
        self.w3 = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)

    def __call__(self, hidden_states):
        current = self.w1(hidden_states)
        current = current * mx.sigmoid(current)
        current = current * self.w3(hidden_states)
        return self.w2(current)


class MixtralSparseMoeBlock(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.num_experts = cfg.num_local_experts
        self.top_k = cfg.num_experts_per_tok
        self.gate = nn.Linear(cfg.hidden_size, self.num_experts, bias=False)
        self.experts = [MixtralBlockSparseTop2MLP(cfg) for _ in range(self.num_experts)]

    def __call__(self, hidden_states):
        B, L, D = hidden_states.shape
        x = hidden_states.reshape(-1, D)
        router_logits = self.gate(x)
        routing_weights = mx.exp(router_logits - mx.max(router_logits, axis=-1, keepdims=True))
        routing_weights = routing_weights / mx.sum(routing_weights, axis=-1, keepdims=True)
        k = self.top_k
        selected = mx.argpartition(-routing_weights, kth=k - 1, axis=-1)[:, :k]
        weights = mx.take_along_axis(routing_weights, selected, axis=-1)
        weights = weights / mx.sum(weights, axis=-1, keepdims=True)

        final = mx.zeros_like(x)
        for expert_idx in range(self.num_experts):
            hit = selected == expert_idx
            if hit.sum().item() == 0:
                continue
            tok_idx, slot = np.nonzero(np.array(hit))
            tok_idx, slot = mx.array(tok_idx), mx.array(slot)
            out = self.experts[expert_idx](x[tok_idx]) * weights[tok_idx, slot][:, None]
            final = final.at[tok_idx].add(out)
        return final.reshape(B, L, D), router_logits


def load_balancing_loss(router_logits, num_experts, top_k):
    probs = mx.softmax(router_logits, axis=-1)
    chosen = mx.argpartition(-probs, kth=top_k - 1, axis=-1)[:, :top_k]
    counts = mx.zeros((num_experts,)).at[chosen.reshape(-1)].add(1.0)
    frac_tokens = counts / counts.sum()
    frac_probs = probs.mean(axis=0)
    return num_experts * mx.sum(frac_tokens * frac_probs)


class MixtralDecoderLayer(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.self_attn = MixtralAttention(cfg)
        self.block_sparse_moe = MixtralSparseMoeBlock(cfg)
        self.input_layernorm = MixtralRMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = MixtralRMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def __call__(self, x, mask=None, cache=None):
        h, cache = self.self_attn(self.input_layernorm(x), mask, cache)
        x = x + h
        h, router_logits = self.block_sparse_moe(self.post_attention_layernorm(x))
        return x + h, cache, router_logits


class MixtralModel(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = [MixtralDecoderLayer(cfg) for _ in range(cfg.num_hidden_layers)]
        self.norm = MixtralRMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def __call__(self, input_ids, cache=None):
        h = self.embed_tokens(input_ids)
        L = h.shape[1]
        mask = None
        if L > 1:
            mask = mx.where(mx.arange(L)[:, None] >= mx.arange(L)[None, :], 0.0, -1e9)
        cache = cache or [None] * len(self.layers)
        all_logits = []
        for i, layer in enumerate(self.layers):
            h, cache[i], rl = layer(h, mask, cache[i])
            all_logits.append(rl)
        return self.norm(h), cache, all_logits
