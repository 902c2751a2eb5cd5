"""Decayed linear attention held wholly in bfloat16, as a model in bfloat16 runs it when its
state takes the activations' dtype (RWKV-7's `_wkv7`, state `r.dtype`): per step
S = S * g_t + k_t v_t^T, y_t = q_t S, every value rounded to bfloat16. Returns (y, S)."""
import mlx.core as mx

T = {"small": 16, "typical": 24, "large": 32}
H, DK, DV = 2, 16, 8


def fn(q, k, v, g):
    b, t, h, dk = q.shape
    state = mx.zeros((b, h, dk, v.shape[-1]), dtype=q.dtype)
    ys = []
    for i in range(t):
        state = state * g[:, i][..., None, None] + k[:, i][..., :, None] * v[:, i][..., None, :]
        ys.append(mx.sum(q[:, i][..., :, None] * state, axis=-2))
    return mx.stack(ys, axis=1), state


def input_factory(size_label, seed):
    t = T[size_label]
    ks = mx.random.split(mx.random.key(seed), 4)
    bf = mx.bfloat16
    q = (mx.random.normal((1, t, H, DK), key=ks[0]) * 0.25).astype(bf)
    k = (mx.random.normal((1, t, H, DK), key=ks[1]) * 0.25).astype(bf)
    v = mx.random.normal((1, t, H, DV), key=ks[2]).astype(bf)
    g = mx.exp(-0.2 * mx.abs(mx.random.normal((1, t, H), key=ks[3]))).astype(bf)
    return (q, k, v, g), {}
