"""Llama-style model written the mlx-lm way: fused kernels everywhere."""
from dataclasses import dataclass
from typing import Optional

import mlx.core as mx
import mlx.nn as nn


@dataclass
class ModelArgs:
    hidden_size: int = 2048
    num_hidden_layers: int = 16
    num_attention_heads: int = 32
    num_key_value_heads: int = 8
    intermediate_size: int = 5632
    vocab_size: int = 32000
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_position_embeddings: int = 4096


class RMSNorm(nn.Module):
    def __init__(self, dims: int, eps: float = 1e-5):
        super().__init__()
        self.weight = mx.ones((dims,))
        self.eps = eps

    def __call__(self, x):
        return mx.fast.rms_norm(x, self.weight, self.eps)


class LayerNorm(nn.Module):
    def __init__(self, dims: int, eps: float = 1e-5):
        super().__init__()
        self.weight = mx.ones((dims,))
        self.bias = mx.zeros((dims,))
        self.eps = eps

    def __call__(self, x):
        return mx.fast.layer_norm(x, self.weight, self.bias, self.eps)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        dim = args.hidden_size
        self.n_heads = args.num_attention_heads
        self.n_kv_heads = args.num_key_value_heads
        self.head_dim = dim // self.n_heads
        self.scale = self.head_dim ** -0.5
        self.rope_theta = args.rope_theta
        self.q_proj = nn.Linear(dim, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(dim, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(dim, self.n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, dim, bias=False)

    def __call__(self, x: mx.array, mask: Optional[mx.array] = None, cache=None) -> mx.array:
        B, L, D = x.shape
        queries, keys, values = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        queries = queries.reshape(B, L, self.n_heads, -1).transpose(0, 2, 1, 3)
        keys = keys.reshape(B, L, self.n_kv_heads, -1).transpose(0, 2, 1, 3)
        values = values.reshape(B, L, self.n_kv_heads, -1).transpose(0, 2, 1, 3)

        offset = cache.offset if cache is not None else 0
        queries = mx.fast.rope(
            queries, self.head_dim, traditional=False, base=self.rope_theta, scale=1.0, offset=offset
        )
        keys = mx.fast.rope(
            keys, self.head_dim, traditional=False, base=self.rope_theta, scale=1.0, offset=offset
        )
        if cache is not None:
            keys, values = cache.update_and_fetch(keys, values)

        # GQA handled natively by the fused kernel: no repeat of keys/values
        output = mx.fast.scaled_dot_product_attention(
            queries, keys, values, scale=self.scale, mask=mask
        )
        output = output.transpose(0, 2, 1, 3).reshape(B, L, -1)
        return self.o_proj(output)


class MLP(nn.Module):
    def __init__(self, dim, hidden_dim):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.down_proj = nn.Linear(hidden_dim, dim, bias=False)
        self.up_proj = nn.Linear(dim, hidden_dim, bias=False)

    def __call__(self, x) -> mx.array:
        return self.down_proj(nn.silu(self.gate_proj(x)) * self.up_proj(x))


class GatedGeluMLP(nn.Module):
    def __init__(self, dim, hidden_dim):
        super().__init__()
        self.wi = nn.Linear(dim, 2 * hidden_dim, bias=False)
        self.wo = nn.Linear(hidden_dim, dim, bias=False)

    def __call__(self, x):
        a, gate = mx.split(self.wi(x), 2, axis=-1)
        # sigmoid of a *different* tensor: a gating unit, not SiLU
        h = a * mx.sigmoid(gate) + nn.gelu_approx(gate)
        return self.wo(h)


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.self_attn = Attention(args)
        self.mlp = MLP(args.hidden_size, args.intermediate_size)
        self.input_layernorm = RMSNorm(args.hidden_size, eps=args.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(args.hidden_size, eps=args.rms_norm_eps)

    def __call__(self, x, mask=None, cache=None):
        h = x + self.self_attn(self.input_layernorm(x), mask, cache)
        return h + self.mlp(self.post_attention_layernorm(h))


class LlamaModel(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.embed_tokens = nn.Embedding(args.vocab_size, args.hidden_size)
        self.layers = [TransformerBlock(args) for _ in range(args.num_hidden_layers)]
        self.norm = RMSNorm(args.hidden_size, eps=args.rms_norm_eps)
        n = args.max_position_embeddings
        idx = mx.arange(n)
        # Built once; sliced per call.
        self._causal_mask = mx.where(idx[:, None] >= idx[None, :], 0.0, -mx.inf)

    def __call__(self, inputs: mx.array, cache=None):
        h = self.embed_tokens(inputs)
        L = h.shape[1]
        mask = None
        if L > 1:
            mask = self._causal_mask[:L, :L].astype(h.dtype)
        if cache is None:
            cache = [None] * len(self.layers)
        for layer, c in zip(self.layers, cache):
            h = layer(h, mask, c)
        return self.norm(h)


class Model(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.model = LlamaModel(args)
        self.lm_head = nn.Linear(args.hidden_size, args.vocab_size, bias=False)

    def __call__(self, inputs, cache=None):
        return self.lm_head(self.model(inputs, cache))


def sample(logits, temp=0.7):
    if temp == 0:
        return mx.argmax(logits, axis=-1)
    probs = mx.softmax(logits / temp, axis=-1)
    return mx.random.categorical(mx.log(probs))


def generate(model, prompt, max_tokens=128):
    y = prompt
    tokens = []
    for _ in range(max_tokens):
        logits = model(y[None])[:, -1, :]
        y = sample(logits)
        tokens.append(y)
    return mx.concatenate(tokens).tolist()
