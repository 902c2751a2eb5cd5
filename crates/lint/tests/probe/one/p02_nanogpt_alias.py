# nanoGPT ported to MLX. Kept as close to the torch original as possible.
import math

import mlx.core as mlx
import mlx.nn as nn


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (MLX's doesn't let you drop it the same way)."""

    def __init__(self, ndim, bias=True, eps=1e-5):
        super().__init__()
        self.weight = mlx.ones((ndim,))
        self.bias = mlx.zeros((ndim,)) if bias else None
        self.eps = eps

    def __call__(self, x):
        mu = mlx.mean(x, axis=-1, keepdims=True)
        xc = x - mu
        var = mlx.mean(xc * xc, axis=-1, keepdims=True)
        y = xc / mlx.sqrt(var + self.eps)
        y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y


def new_gelu(x):
    return 0.5 * x * (1.0 + mlx.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * mlx.power(x, 3.0))))


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_head = n_head
        self.n_embd = n_embd

    def __call__(self, x):
        B, T, C = x.shape
        q, k, v = mlx.split(self.c_attn(x), 3, axis=2)
        hs = C // self.n_head
        q = q.reshape(B, T, self.n_head, hs)
        k = k.reshape(B, T, self.n_head, hs)
        v = v.reshape(B, T, self.n_head, hs)

        idx = mlx.arange(T)
        causal = idx[:, None] >= idx[None, :]
        att = mlx.einsum("bqhd,bkhd->bhqk", q, k) * (1.0 / math.sqrt(hs))
        att = mlx.where(causal, att, -1e9)
        att = att - mlx.max(att, axis=-1, keepdims=True)
        att = mlx.exp(att)
        att = att / mlx.sum(att, axis=-1, keepdims=True)
        y = mlx.einsum("bhqk,bkhd->bqhd", att, v)
        return self.c_proj(y.reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, n_embd):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def __call__(self, x):
        return self.c_proj(new_gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.ln_1 = LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln_2 = LayerNorm(n_embd)
        self.mlp = MLP(n_embd)

    def __call__(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size=50304, block_size=1024, n_layer=12, n_head=12, n_embd=768):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = [Block(n_embd, n_head) for _ in range(n_layer)]
        self.ln_f = LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)

    def __call__(self, idx):
        b, t = idx.shape
        pos = mlx.arange(0, t)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def generate(model, tokenizer, idx, max_new_tokens, temperature=1.0):
    for _ in range(max_new_tokens):
        logits = model(idx)[:, -1, :] / temperature
        probs = mlx.exp(logits) / mlx.sum(mlx.exp(logits), axis=-1, keepdims=True)
        idx_next = mlx.random.categorical(mlx.log(probs))
        print(tokenizer.decode([idx_next.item()]), end="", flush=True)
        idx = mlx.concatenate([idx, idx_next[:, None]], axis=1)
    return idx
