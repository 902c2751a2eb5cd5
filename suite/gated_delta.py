"""Chunked gated delta rule (linear attention), written with Python loops: chunk 64, GQA 8 key / 32 value heads, d=128 (CPU: smaller)."""
import mlx.core as mx
from _sizes import pick

HK, HV, D, CHUNK = pick((8, 32, 128, 64), (2, 4, 16, 16))
T = pick({"small": 64, "typical": 512, "large": 2048}, {"small": 32, "typical": 64, "large": 128})


def fn(q, k, v, g, beta):
    b, t = q.shape[0], q.shape[2]
    rep = HV // HK
    q, k = mx.repeat(q, rep, axis=1), mx.repeat(k, rep, axis=1)
    state = mx.zeros((b, HV, D, D))
    outs = []
    for c in range(t // CHUNK):
        s = slice(c * CHUNK, (c + 1) * CHUNK)
        qc, kc, vc, gc, bc = q[:, :, s], k[:, :, s], v[:, :, s], g[:, :, s], beta[:, :, s]
        outs_c = []
        for i in range(CHUNK):
            state = state * mx.exp(gc[:, :, i])[..., None, None]
            kt = kc[:, :, i]
            pred = (state * kt[..., None]).sum(axis=-2)
            state = state + kt[..., None] * ((vc[:, :, i] - pred) * bc[:, :, i][..., None])[..., None, :]
            outs_c.append((state * qc[:, :, i][..., None]).sum(axis=-2))
        outs.append(mx.stack(outs_c, axis=2))
    return mx.concatenate(outs, axis=2)


def input_factory(size_label, seed):
    t = T[size_label]
    ks = mx.random.split(mx.random.key(seed), 5)
    q = mx.random.normal((1, HK, t, D), key=ks[0]) * D**-0.5
    k = mx.random.normal((1, HK, t, D), key=ks[1]) * D**-0.5
    v = mx.random.normal((1, HV, t, D), key=ks[2])
    g = -0.05 * mx.abs(mx.random.normal((1, HV, t), key=ks[3]))
    beta = mx.sigmoid(mx.random.normal((1, HV, t), key=ks[4]))
    return (q, k, v, g, beta), {}
