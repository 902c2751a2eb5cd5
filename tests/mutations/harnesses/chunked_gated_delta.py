"""A naive port of the chunked gated delta rule (the WY form of Qwen3-Next's linear
attention): q and k repeated to the value heads, masks built inside the call, the
chunk's unit lower-triangular system solved by in-place row updates, nothing compiled.
Real dims by default (key heads 16, value heads 32, d 128, chunk 64); SUPEROPT_SIZES=cpu
picks small ones."""
import os

import mlx.core as mx

CPU = os.environ.get("SUPEROPT_SIZES") == "cpu"
HK, HV, D, CHUNK = (2, 4, 16, 16) if CPU else (16, 32, 128, 64)
T = {"small": 32, "typical": 64, "large": 128} if CPU else {"small": 1024, "typical": 2048, "large": 4096}


def fn(q, k, v, g, beta):
    b, _, t, d = q.shape
    rep = v.shape[1] // q.shape[1]
    q, k = mx.repeat(q, rep, axis=1), mx.repeat(k, rep, axis=1)
    h, n, c = v.shape[1], t // CHUNK, CHUNK

    def chunks(x):
        return x.reshape(b, h, n, c, *x.shape[3:])

    q, k, v, g, beta = chunks(q), chunks(k), chunks(v), chunks(g), chunks(beta)
    g = mx.cumsum(g, axis=-1)
    upper = mx.triu(mx.ones((c, c), dtype=mx.bool_), k=0)
    decay = mx.tril(mx.exp(mx.tril(g[..., :, None] - g[..., None, :])))
    k_beta, v_beta = k * beta[..., None], v * beta[..., None]
    attn = mx.where(upper, 0.0, -(k_beta @ mx.swapaxes(k, -1, -2)) * decay)
    for i in range(1, c):
        row = attn[..., i, :i]
        attn[..., i, :i] = row + (row[..., None] * attn[..., :i, :i]).sum(axis=-2)
    attn = attn + mx.eye(c)
    value = attn @ v_beta
    k_cumdecay = attn @ (k_beta * mx.exp(g)[..., None])
    state = mx.zeros((b, h, d, v.shape[-1]))
    strict_upper = mx.triu(mx.ones((c, c), dtype=mx.bool_), k=1)
    outs = []
    for i in range(n):
        qi, ki, gi = q[:, :, i], k[:, :, i], g[:, :, i]
        inner = mx.where(strict_upper, 0.0, (qi @ mx.swapaxes(ki, -1, -2)) * decay[:, :, i])
        v_new = value[:, :, i] - k_cumdecay[:, :, i] @ state
        outs.append((qi * mx.exp(gi)[..., None]) @ state + inner @ v_new)
        last = gi[..., -1, None]
        state = state * mx.exp(last)[..., None] + mx.swapaxes(ki * mx.exp(last - gi)[..., None], -1, -2) @ v_new
    return mx.stack(outs, axis=2).reshape(b, h, t, -1)


def input_factory(size_label, seed):
    t = T[size_label]
    ks = mx.random.split(mx.random.key(seed), 5)
    q = mx.random.normal((1, HK, t, D), key=ks[0]) * D**-0.5
    k = mx.random.normal((1, HK, t, D), key=ks[1]) * D**-0.5
    v = mx.random.normal((1, HV, t, D), key=ks[2])
    g = -0.05 * mx.abs(mx.random.normal((1, HV, t), key=ks[3]))
    beta = mx.sigmoid(mx.random.normal((1, HV, t), key=ks[4]))
    return (q, k, v, g, beta), {}
