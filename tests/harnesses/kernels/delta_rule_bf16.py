"""Delta rule on bfloat16 activations with a float32 state (mlx-lm style layout)."""
import mlx.core as mx

def fn(q, k, v, g, beta):
    b, t, h, dk = q.shape
    state = mx.zeros((b, h, v.shape[-1], dk), dtype=mx.float32)
    ys = []
    for i in range(t):
        state = state * g[:, i][..., None, None]
        kv = (state * k[:, i][..., None, :]).sum(axis=-1)
        delta = (v[:, i] - kv) * beta[:, i][..., None]
        state = state + k[:, i][..., None, :] * delta[..., None]
        ys.append((state * q[:, i][..., None, :]).sum(axis=-1).astype(q.dtype))
    return mx.stack(ys, axis=1), state

def input_factory(size_label, seed):
    t = {"small": 16, "typical": 24, "large": 32}[size_label]
    ks = mx.random.split(mx.random.key(seed), 5)
    bf = mx.bfloat16
    q = (mx.random.normal((1, t, 4, 16), key=ks[0]) * 0.25).astype(bf)
    k = (mx.random.normal((1, t, 4, 16), key=ks[1]) * 0.25).astype(bf)
    v = mx.random.normal((1, t, 4, 8), key=ks[2]).astype(bf)
    g = mx.exp(-0.1 * mx.abs(mx.random.normal((1, t, 4), key=ks[3]))).astype(bf)
    beta = mx.sigmoid(mx.random.normal((1, t, 4), key=ks[4])).astype(bf)
    return (q, k, v, g, beta), {}
