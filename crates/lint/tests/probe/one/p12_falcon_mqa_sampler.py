"""Falcon-7B style multi-query attention + a top-p sampler."""
import math

import mlx.core as mxc
import mlx.nn as nn

SQRT1_2 = 0.7071067811865476


class FalconLayerNorm(nn.Module):
    def __init__(self, dims, eps=1e-5):
        super().__init__()
        self.weight = mxc.ones((dims,))
        self.bias = mxc.zeros((dims,))
        self.eps = eps

    def __call__(self, x):
        centered = x - mxc.mean(x, axis=-1, keepdims=True)
        inv_std = 1 / mxc.sqrt(mxc.var(x, axis=-1, keepdims=True) + self.eps)
        return centered * inv_std * self.weight + self.bias


def erf_gelu(x):
    return x * 0.5 * (1.0 + mxc.erf(x * SQRT1_2))


class FalconAttention(nn.Module):
    def __init__(self, hidden=4544, n_head=71):
        super().__init__()
        self.n_head = n_head
        self.head_dim = hidden // n_head
        self.query_key_value = nn.Linear(hidden, hidden + 2 * self.head_dim, bias=False)
        self.dense = nn.Linear(hidden, hidden, bias=False)
        self.rope = nn.RoPE(self.head_dim)

    def __call__(self, x):
        B, L, D = x.shape
        fused = self.query_key_value(x)
        q = fused[..., :D].reshape(B, L, self.n_head, self.head_dim).transpose(0, 2, 1, 3)
        k = fused[..., D : D + self.head_dim].reshape(B, L, 1, self.head_dim).transpose(0, 2, 1, 3)
        v = fused[..., D + self.head_dim :].reshape(B, L, 1, self.head_dim).transpose(0, 2, 1, 3)
        q = self.rope(q)
        k = self.rope(k)
        k = mxc.tile(k, (1, self.n_head, 1, 1))
        v = mxc.tile(v, (1, self.n_head, 1, 1))

        mask = None
        if L > 1:
            mask = mxc.tril(mxc.ones((L, L), dtype=mxc.bool_))
        o = mxc.fast.scaled_dot_product_attention(
            q, k, v, scale=1.0 / math.sqrt(self.head_dim), mask=mask
        )
        return self.dense(o.transpose(0, 2, 1, 3).reshape(B, L, D))


class FalconMLP(nn.Module):
    def __init__(self, hidden=4544):
        super().__init__()
        self.dense_h_to_4h = nn.Linear(hidden, 4 * hidden, bias=False)
        self.dense_4h_to_h = nn.Linear(4 * hidden, hidden, bias=False)

    def __call__(self, x):
        return self.dense_4h_to_h(erf_gelu(self.dense_h_to_4h(x)))


def top_p_sample(logits, top_p=0.9, temperature=0.8):
    logits = logits / temperature
    m = mxc.max(logits, axis=-1, keepdims=True)
    e = mxc.exp(logits - m)
    probs = e / mxc.sum(e, axis=-1, keepdims=True)
    order = mxc.argsort(-probs, axis=-1)
    sorted_probs = mxc.take_along_axis(probs, order, axis=-1)
    cum = mxc.cumsum(sorted_probs, axis=-1)
    keep = []
    for p, c in zip(sorted_probs[0].tolist(), cum[0].tolist()):
        keep.append(p)
        if c > top_p:
            break
    choice = mxc.random.categorical(mxc.log(mxc.array(keep)))
    return order[0, choice.item()]


def stream_tokens(model, prompt, n=100):
    y = prompt
    for _ in range(n):
        logits = model(y[None])[:, -1, :]
        tok = top_p_sample(logits)
        yield tok.item()
        y = mxc.concatenate([y, tok[None]])
