"""A Mamba-2 token loop in the style of mlx-lm's ssm.py: `compute_dt` (softplus, clipped) made
once, then per step the decay exp(A * dt_t), and the groups' B_t and C_t repeated to the heads
inside the step (`mx.repeat(B_t, heads // groups, axis=1)`, a reshape of a broadcast); the
state [B, H, Dh, N] in float32, x in bfloat16, y cast back. Returns (y, state)."""
import mlx.core as mx
from mlx_lm.models.ssm import compute_dt

T = {"small": 16, "typical": 24, "large": 32}
H, DH, G, N = 4, 8, 2, 16


def step(x_t, a, b_t, c_t, d, dt_t, state):
    heads = x_t.shape[1]
    decay = mx.exp(a * dt_t)[:, :, None, None]
    xf = x_t.astype(mx.float32)
    b_h = mx.repeat(b_t, heads // b_t.shape[1], axis=1)
    c_h = mx.repeat(c_t, heads // c_t.shape[1], axis=1)
    state = decay * state + mx.expand_dims(xf * dt_t[..., None], -1) * mx.expand_dims(b_h, 2)
    y = mx.sum(state * mx.expand_dims(c_h, 2), axis=-1) + xf * d[:, None]
    return y.astype(x_t.dtype), state


def fn(x, a_log, b, c, d, dt, dt_bias, state):
    dt = compute_dt(dt, dt_bias, (0.001, 100.0))
    a = -mx.exp(a_log)
    ys = []
    for t in range(x.shape[1]):
        y, state = step(x[:, t], a, b[:, t], c[:, t], d, dt[:, t], state)
        ys.append(y)
    return mx.stack(ys, axis=1), state


def input_factory(size_label, seed):
    t = T[size_label]
    ks = mx.random.split(mx.random.key(seed), 8)
    x = mx.random.normal((1, t, H, DH), key=ks[0]).astype(mx.bfloat16)
    a_log = mx.random.uniform(-1.0, 1.0, (H,), key=ks[1])
    b = mx.random.normal((1, t, G, N), key=ks[2]) * 0.3
    c = mx.random.normal((1, t, G, N), key=ks[3]) * 0.3
    d = mx.random.normal((H,), key=ks[4])
    dt = mx.random.normal((1, t, H), key=ks[5])
    dt_bias = mx.random.uniform(-3.0, -1.0, (H,), key=ks[6])
    state = mx.random.normal((1, H, DH, N), key=ks[7]) * 0.1
    return (x, a_log, b, c, d, dt, dt_bias, state), {}
