"""Reference ports of two recurrent-ish token mixers.

* MambaBlock: selective scan, straight from mamba_simple / mamba-minimal.
* chunk_delta_rule: chunked DeltaNet from the fla torch reference.
"""
import math

import mlx.core as mx
import mlx.nn as nn


class MambaBlock(nn.Module):
    def __init__(self, d_model, d_state=16, d_conv=4, expand=2):
        super().__init__()
        d_inner = expand * d_model
        self.d_state = d_state
        self.dt_rank = math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, padding=d_conv - 1, groups=d_inner)
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, d_inner)
        A = mx.repeat(mx.arange(1, d_state + 1, dtype=mx.float32)[None], d_inner, axis=0)
        self.A_log = mx.log(A)
        self.D = mx.ones((d_inner,))
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        self.norm_w = mx.ones((d_model,))

    def ssm(self, x):
        A = -mx.exp(self.A_log.astype(mx.float32))
        x_dbl = self.x_proj(x)
        delta, B, C = mx.split(x_dbl, [self.dt_rank, self.dt_rank + self.d_state], axis=-1)
        delta = nn.softplus(self.dt_proj(delta))
        dA = mx.exp(delta[..., None] * A)
        dBx = delta[..., None] * B[:, :, None, :] * x[..., None]
        h = mx.zeros((x.shape[0], x.shape[2], self.d_state))
        ys = []
        for t in range(x.shape[1]):
            h = dA[:, t] * h + dBx[:, t]
            ys.append((h @ C[:, t, :, None]).squeeze(-1))
        y = mx.stack(ys, axis=1)
        return y + x * self.D

    def __call__(self, u):
        h = u * mx.rsqrt(mx.mean(u * u, axis=-1, keepdims=True) + 1e-5) * self.norm_w
        xz = self.in_proj(h)
        x, z = mx.split(xz, 2, axis=-1)
        L = x.shape[1]
        x = self.conv1d(x)[:, :L]
        x = x * mx.sigmoid(x)
        y = self.ssm(x)
        y = y * nn.silu(z)
        return u + self.out_proj(y)


def l2norm(x, eps=1e-6):
    return x / mx.sqrt((x * x).sum(-1, keepdims=True) + eps)


def chunk_delta_rule(q, k, v, beta, chunk_size=64):
    B, H, L, Dk = q.shape
    Dv = v.shape[-1]
    C = chunk_size
    q = l2norm(q) * (Dk ** -0.5)
    k = l2norm(k)
    v = v * beta[..., None]
    k_beta = k * beta[..., None]
    n = L // C
    q, k, v, k_beta = [t.reshape(B, H, n, C, -1) for t in (q, k, v, k_beta)]

    mask = mx.triu(mx.ones((C, C), dtype=mx.bool_), k=0)
    attn = -(k_beta @ k.swapaxes(-1, -2))
    attn = mx.where(mask, 0, attn)
    for i in range(1, C):
        attn[..., i, :i] = attn[..., i, :i] + (attn[..., i, :, None] * attn[..., :, :i]).sum(-2)
    attn = attn + mx.eye(C)
    w = attn @ k_beta
    u = attn @ v

    S = mx.zeros((B, H, Dk, Dv))
    o = []
    strict = mx.triu(mx.ones((C, C), dtype=mx.bool_), k=1)
    for i in range(n):
        q_i, k_i = q[:, :, i], k[:, :, i]
        a = mx.where(strict, 0, q_i @ k_i.swapaxes(-1, -2))
        u_i = u[:, :, i] - w[:, :, i] @ S
        o_inter = q_i @ S
        o.append(o_inter + a @ u_i)
        S = S + mx.contiguous(k_i.swapaxes(-1, -2)) @ u_i
    out = mx.stack(o, axis=2).reshape(B, H, L, Dv)
    return out, S


def solve_unit_lower(Lmat, b):
    """Forward substitution for (I + L) x = b, kept for the unit tests."""
    n = b.shape[0]
    xs = [b[0]]
    for i in range(1, n):
        acc = b[i]
        for j in range(i):
            acc = acc - Lmat[i, j] * xs[j]
        xs.append(acc)
    return mx.stack(xs)


class DeltaNetLayer(nn.Module):
    def __init__(self, dim, n_heads, head_dim):
        super().__init__()
        self.h, self.dk = n_heads, head_dim
        self.q_proj = nn.Linear(dim, n_heads * head_dim, bias=False)
        self.k_proj = nn.Linear(dim, n_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(dim, n_heads * head_dim, bias=False)
        self.b_proj = nn.Linear(dim, n_heads, bias=False)
        self.g_proj = nn.Linear(dim, n_heads * head_dim, bias=False)
        self.conv_scale = mx.ones((dim,))
        self.o_norm_w = mx.ones((head_dim,))
        self.o_proj = nn.Linear(n_heads * head_dim, dim, bias=False)

    def __call__(self, x):
        B, L, D = x.shape
        h = x.swapaxes(1, 2)
        h = h * self.conv_scale[:, None]
        h = h.swapaxes(1, 2)
        q = self.q_proj(h).reshape(B, L, self.h, self.dk).transpose(0, 2, 1, 3)
        k = self.k_proj(h).reshape(B, L, self.h, self.dk).transpose(0, 2, 1, 3)
        v = self.v_proj(h).reshape(B, L, self.h, self.dk).transpose(0, 2, 1, 3)
        beta = mx.sigmoid(self.b_proj(h)).transpose(0, 2, 1)
        o, _ = chunk_delta_rule(nn.silu(q), nn.silu(k), nn.silu(v), beta)
        o = o.transpose(0, 2, 1, 3)
        o = o * mx.rsqrt((o ** 2).mean(-1, keepdims=True) + 1e-5) * self.o_norm_w
        g = self.g_proj(h).reshape(B, L, self.h, self.dk)
        o = o * nn.silu(g)
        return self.o_proj(o.reshape(B, L, -1))
