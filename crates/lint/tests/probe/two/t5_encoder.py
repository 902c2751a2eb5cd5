# T5 v1.1 encoder, ported from transformers' modeling_t5.py
# (only the encoder stack, used for text conditioning)
import math

import mlx.core as M
import mlx.nn as nn


def gelu_new(x):
    return 0.5 * x * (1.0 + M.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * M.power(x, 3.0))))


class T5LayerNorm(nn.Module):
    """No bias and no mean subtraction, as in the original Mesh TF code."""

    def __init__(self, d_model, eps=1e-6):
        super().__init__()
        self.weight = M.ones((d_model,))
        self.variance_epsilon = eps

    def __call__(self, hidden_states):
        variance = M.power(hidden_states.astype(M.float32), 2).mean(axis=-1, keepdims=True)
        hidden_states = hidden_states * M.reciprocal(M.sqrt(variance + self.variance_epsilon))
        return self.weight * hidden_states.astype(self.weight.dtype)


def relative_position_bucket(relative_position, num_buckets=32, max_distance=128):
    num_buckets //= 2
    ret = (relative_position > 0).astype(M.int32) * num_buckets
    n = M.abs(relative_position)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    val_if_large = max_exact + (
        M.log(n.astype(M.float32) / max_exact + 1e-6)
        / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).astype(M.int32)
    val_if_large = M.minimum(val_if_large, num_buckets - 1)
    return ret + M.where(is_small, n, val_if_large)


class T5Attention(nn.Module):
    def __init__(self, d_model, n_heads, d_kv, has_relative_bias=False):
        super().__init__()
        self.n_heads = n_heads
        self.d_kv = d_kv
        inner = n_heads * d_kv
        self.q = nn.Linear(d_model, inner, bias=False)
        self.k = nn.Linear(d_model, inner, bias=False)
        self.v = nn.Linear(d_model, inner, bias=False)
        self.o = nn.Linear(inner, d_model, bias=False)
        self.has_relative_bias = has_relative_bias
        if has_relative_bias:
            self.relative_attention_bias = nn.Embedding(32, n_heads)

    def __call__(self, x, mask=None, position_bias=None):
        B, L, _ = x.shape
        q = self.q(x).reshape(B, L, self.n_heads, self.d_kv).swapaxes(1, 2)
        k = self.k(x).reshape(B, L, self.n_heads, self.d_kv).swapaxes(1, 2)
        v = self.v(x).reshape(B, L, self.n_heads, self.d_kv).swapaxes(1, 2)

        if position_bias is None:
            context_position = M.arange(L)[:, None]
            memory_position = M.arange(L)[None, :]
            relative_position = memory_position - context_position
            buckets = relative_position_bucket(relative_position)
            position_bias = self.relative_attention_bias(buckets).transpose(2, 0, 1)[None]

        # T5 does not scale the logits
        scores = M.einsum("bhqd,bhkd->bhqk", q, k)
        scores = scores + position_bias
        if mask is not None:
            scores = scores + mask
        scores = scores - scores.max(axis=-1, keepdims=True)
        probs = M.exp(scores)
        probs = probs / probs.sum(axis=-1, keepdims=True)
        ctx = M.einsum("bhqk,bhkd->bhqd", probs, v)

        ctx = M.contiguous(ctx.swapaxes(1, 2)).reshape(B, L, -1)
        return self.o(ctx), position_bias


class T5DenseGatedGelu(nn.Module):
    def __init__(self, d_model, d_ff):
        super().__init__()
        self.wi_0 = nn.Linear(d_model, d_ff, bias=False)
        self.wi_1 = nn.Linear(d_model, d_ff, bias=False)
        self.wo = nn.Linear(d_ff, d_model, bias=False)

    def __call__(self, x):
        return self.wo(gelu_new(self.wi_0(x)) * self.wi_1(x))


class T5Block(nn.Module):
    def __init__(self, d_model, n_heads, d_kv, d_ff, first=False):
        super().__init__()
        self.attn = T5Attention(d_model, n_heads, d_kv, has_relative_bias=first)
        self.ln1 = T5LayerNorm(d_model)
        self.ff = T5DenseGatedGelu(d_model, d_ff)
        self.ln2 = T5LayerNorm(d_model)

    def __call__(self, x, mask, position_bias):
        y, position_bias = self.attn(self.ln1(x), mask, position_bias)
        x = x + y
        x = x + self.ff(self.ln2(x))
        return x, position_bias


class T5Encoder(nn.Module):
    def __init__(self, vocab=32128, d_model=768, n_heads=12, d_kv=64, d_ff=2048, n_layers=12):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.blocks = [T5Block(d_model, n_heads, d_kv, d_ff, first=(i == 0)) for i in range(n_layers)]
        self.final_ln = T5LayerNorm(d_model)

    def __call__(self, input_ids, attention_mask):
        x = self.embed(input_ids)
        ext = (1.0 - attention_mask[:, None, None, :].astype(M.float32)) * -1e9
        bias = None
        for blk in self.blocks:
            x, bias = blk(x, ext, bias)
        return self.final_ln(x)


def batch_encode(model, batches):
    """Mean-pooled sentence embeddings for a list of (ids, mask) batches."""
    pooled = []
    for ids, attn in batches:
        h = model(ids, attn)
        lengths = attn.sum(axis=1).tolist()
        for i, n in enumerate(lengths):
            pooled.append(h[i, :n].mean(axis=0))
    return M.stack(pooled)
