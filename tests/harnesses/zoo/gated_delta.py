"""A gated delta rule (linear attention) written step by step with a Python loop over time."""
import mlx.core as mx

H, DK, DV = 2, 16, 16
T = {"small": 8, "typical": 32, "large": 64}


def fn(q, k, v, g, beta):
    b, t = q.shape[0], q.shape[2]
    state = mx.zeros((b, H, DK, DV))
    outs = []
    for i in range(t):
        state = state * mx.exp(g[:, :, i])[..., None, None]
        kt, vt = k[:, :, i], v[:, :, i]
        pred = (state * kt[..., None]).sum(axis=-2)
        delta = (vt - pred) * beta[:, :, i][..., None]
        state = state + kt[..., None] * delta[..., None, :]
        outs.append((state * q[:, :, i][..., None]).sum(axis=-2))
    return mx.stack(outs, axis=2)


def input_factory(size_label, seed):
    ks = mx.random.split(mx.random.key(seed), 5)
    t = T[size_label]
    q = mx.random.normal((1, H, t, DK), key=ks[0])
    k = mx.random.normal((1, H, t, DK), key=ks[1]) * DK**-0.5
    v = mx.random.normal((1, H, t, DV), key=ks[2])
    g = -mx.abs(mx.random.normal((1, H, t), key=ks[3])) * 0.1
    beta = mx.sigmoid(mx.random.normal((1, H, t), key=ks[4]))
    return (q, k, v, g, beta), {}
