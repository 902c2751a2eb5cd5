"""The gated delta rule token by token as mlx-lm's ops fallback spells it: state [B, H, Dv, Dk],
sums over the last axis, inputs in [B, T, H, D], outputs stacked along T."""
import mlx.core as mx

T = {"small": 16, "typical": 32, "large": 48}


def step(q, k, v, g, beta, state):
    state = state * g[..., None, None]
    kv_mem = (state * k[..., None, :]).sum(axis=-1)
    delta = (v - kv_mem) * beta[..., None]
    state = state + k[..., None, :] * delta[..., None]
    y = (state * q[..., None, :]).sum(axis=-1)
    return y, state


def fn(q, k, v, g, beta):
    b, t, h, dk = q.shape
    state = mx.zeros((b, h, v.shape[-1], dk))
    ys = []
    for i in range(t):
        y, state = step(q[:, i], k[:, i], v[:, i], g[:, i], beta[:, i], state)
        ys.append(y)
    return mx.stack(ys, axis=1), state


def input_factory(size_label, seed):
    t = T[size_label]
    ks = mx.random.split(mx.random.key(seed), 5)
    q = mx.random.normal((1, t, 4, 16), key=ks[0]) * 0.25
    k = mx.random.normal((1, t, 4, 16), key=ks[1]) * 0.25
    v = mx.random.normal((1, t, 4, 8), key=ks[2])
    g = mx.exp(-0.1 * mx.abs(mx.random.normal((1, t, 4), key=ks[3])))
    beta = mx.sigmoid(mx.random.normal((1, t, 4), key=ks[4]))
    return (q, k, v, g, beta), {}
