"""Chunked gated delta rule (Qwen3-Next's linear attention), as a first MLX port writes it:
q and k repeated to the value heads, masks and decays built in the call, each chunk's unit
lower-triangular system solved by in-place row updates, a Python loop over chunks for the
state. Qwen3-Next dims: key heads 16, value heads 32, d 128, chunk 64 (CPU: smaller)."""
import mlx.core as mx
from _sizes import pick

HK, HV, D, C = pick((16, 32, 128, 64), (2, 4, 16, 16))
T = pick({"small": 1024, "typical": 4096, "large": 8192}, {"small": 32, "typical": 64, "large": 128})


def fn(q, k, v, g, beta):
    b, _, t, d = q.shape
    n = t // C
    q = mx.repeat(q, HV // HK, axis=1).reshape(b, HV, n, C, d)
    k = mx.repeat(k, HV // HK, axis=1).reshape(b, HV, n, C, d)
    v = v.reshape(b, HV, n, C, -1)
    g = mx.cumsum(g.reshape(b, HV, n, C), axis=-1)
    beta = beta.reshape(b, HV, n, C)
    lower = mx.tril(mx.ones((C, C), dtype=mx.bool_), k=-1)
    decay = mx.exp(mx.where(mx.tril(mx.ones((C, C), dtype=mx.bool_)), g[..., :, None] - g[..., None, :], -mx.inf))
    attn = mx.where(lower, -((k * beta[..., None]) @ k.swapaxes(-1, -2)) * decay, 0.0)
    for i in range(1, C):
        attn[..., i, :i] = attn[..., i, :i] + (attn[..., i, :i, None] * attn[..., :i, :i]).sum(-2)
    attn = attn + mx.eye(C)
    u = attn @ (v * beta[..., None])
    w = attn @ (k * (beta * mx.exp(g))[..., None])
    state = mx.zeros((b, HV, d, v.shape[-1]))
    out = []
    for i in range(n):
        qi, ki, gi = q[:, :, i], k[:, :, i], g[:, :, i]
        inner = mx.where(lower | mx.eye(C, dtype=mx.bool_), qi @ ki.swapaxes(-1, -2), 0.0) * decay[:, :, i]
        v_new = u[:, :, i] - w[:, :, i] @ state
        out.append((qi * mx.exp(gi)[..., None]) @ state + inner @ v_new)
        g_end = gi[..., -1:]
        state = state * mx.exp(g_end)[..., None] + (ki * mx.exp(g_end - gi)[..., None]).swapaxes(-1, -2) @ v_new
    return mx.stack(out, axis=2).reshape(b, HV, t, -1)


def input_factory(size_label, seed):
    t = T[size_label]
    ks = mx.random.split(mx.random.key(seed), 5)
    q = mx.random.normal((1, HK, t, D), key=ks[0]) * D**-0.5
    k = mx.random.normal((1, HK, t, D), key=ks[1]) * D**-0.5
    v = mx.random.normal((1, HV, t, D), key=ks[2])
    g = -0.05 * mx.abs(mx.random.normal((1, HV, t), key=ks[3]))
    beta = mx.sigmoid(mx.random.normal((1, HV, t), key=ks[4]))
    return (q, k, v, g, beta), {}
