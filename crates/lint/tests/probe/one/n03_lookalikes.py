"""Math that superficially resembles the fused ops but is something else."""
import math

import mlx.core as mx
import mlx.nn as nn


def l2_normalize(x, eps=1e-12):
    # L2 normalisation: sum of squares, not mean -> not RMSNorm
    return x / mx.sqrt(mx.sum(x * x, axis=-1, keepdims=True) + eps)


def adafactor_rms(update):
    # global RMS of a tensor (no axis), used for update clipping
    return mx.sqrt(mx.mean(update * update))


def mse(pred, target):
    return mx.mean((pred - target) ** 2)


def standardize(x, mean, std):
    # fixed dataset statistics, not per-row moments -> not LayerNorm
    return (x - mean) / std


def center(x):
    # subtracts the mean but never divides by a std
    return x - x.mean(axis=-1, keepdims=True)


def normal_cdf(z):
    # Phi(z): the erf expression without the leading x factor -> not GELU
    return 0.5 * (1.0 + mx.erf(z / math.sqrt(2.0)))


def glu(x, gate):
    return x * mx.sigmoid(gate)


def swish_beta(x, beta):
    # sigmoid of a different tensor
    return x / (1 + mx.exp(-beta))


def tanh_from_sigmoid(x):
    return 2 * mx.sigmoid(2 * x) - 1


def mixed_ratio(x, y):
    # numerator and denominator exponentiate different tensors
    return mx.exp(x) / mx.sum(mx.exp(y), axis=-1, keepdims=True)


def normalize_probs(p):
    # already-positive weights, no exp
    return p / p.sum(axis=-1, keepdims=True)


def log_softmax(x):
    return x - mx.logsumexp(x, axis=-1, keepdims=True)


def rotate_points(px, py, theta):
    # 2-D rotation of separate coordinate arrays (data augmentation), not RoPE
    c, s = mx.cos(theta), mx.sin(theta)
    return px * c - py * s, px * s + py * c


class MoERouter(nn.Module):
    def __init__(self, dim, n_experts, top_k=2):
        super().__init__()
        self.gate = nn.Linear(dim, n_experts, bias=False)
        self.top_k = top_k

    def __call__(self, x):
        scores = mx.softmax(self.gate(x), axis=-1, precise=True)
        inds = mx.argpartition(-scores, kth=self.top_k - 1, axis=-1)[..., : self.top_k]
        return inds, mx.take_along_axis(scores, inds, axis=-1)


class Whisperish(nn.Module):
    def __init__(self, n_vocab, n_ctx, n_state, n_head):
        super().__init__()
        self.token_embedding = nn.Embedding(n_vocab, n_state)
        self.positional_embedding = nn.Embedding(n_ctx, n_state)
        self.n_head = n_head
        self.qkv = nn.Linear(n_state, 3 * n_state)
        self.out = nn.Linear(n_state, n_state)
        self.ln = nn.LayerNorm(n_state)
        idx = mx.arange(n_ctx)
        self._mask = mx.where(idx[None, :] > idx[:, None], -mx.inf, 0.0)
        half = n_state // 2
        inv = mx.exp(-math.log(10000.0) * mx.arange(half) / (half - 1))
        t = mx.arange(n_ctx)[:, None] * inv[None, :]
        self._sinusoids = mx.concatenate([mx.sin(t), mx.cos(t)], axis=1)

    def __call__(self, tokens, offset=0):
        B, L = tokens.shape
        positions = mx.arange(offset, offset + L)
        x = self.token_embedding(tokens) + self.positional_embedding(positions)
        x = x + self._sinusoids[offset : offset + L]
        q, k, v = mx.split(self.qkv(self.ln(x)), 3, axis=-1)
        q = q.reshape(B, L, self.n_head, -1).transpose(0, 2, 1, 3)
        k = k.reshape(B, L, self.n_head, -1).transpose(0, 2, 1, 3)
        v = v.reshape(B, L, self.n_head, -1).transpose(0, 2, 1, 3)
        o = mx.fast.scaled_dot_product_attention(
            q, k, v, scale=q.shape[-1] ** -0.5, mask=self._mask[:L, :L]
        )
        o = o.transpose(0, 2, 1, 3).reshape(B, L, -1)
        return nn.gelu(self.out(o))


def project(x, w):
    # a single transpose of a weight
    return x @ w.T


def affine_rows_loop(x):
    # row loop without host syncs and without reading earlier rows of the output
    out = mx.zeros_like(x)
    for i in range(x.shape[0]):
        out[i] = x[i] * 2.0 + 1.0
    return out


def silu_layer(x):
    return nn.silu(x)


def gelu_layer(x):
    return nn.gelu(x) + nn.gelu_approx(x)


def fused_rope(x, offset):
    return mx.fast.rope(x, x.shape[-1], traditional=True, base=10000.0, scale=1.0, offset=offset)
