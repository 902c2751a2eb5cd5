"""GQA attention spelled another way: K/V expanded by broadcast_to + reshape, scores divided
by sqrt(d), an additive causal mask built by where() in the call."""
import mlx.core as mx

H, HK, D = 4, 2, 16
T = {"small": 8, "typical": 16, "large": 32}


def fn(q, k, v):
    b, _, t, d = q.shape
    rep = H // HK
    k = mx.broadcast_to(k[:, :, None], (b, HK, rep, t, d)).reshape(b, H, t, d)
    v = mx.broadcast_to(v[:, :, None], (b, HK, rep, t, d)).reshape(b, H, t, d)
    scores = (q @ k.swapaxes(-1, -2)) / mx.sqrt(mx.array(d, dtype=mx.float32))
    idx = mx.arange(t)
    mask = mx.where(idx[:, None] >= idx[None, :], 0.0, -mx.inf)
    return mx.softmax(scores + mask, axis=-1) @ v


def input_factory(size_label, seed):
    t = T[size_label]
    k = mx.random.split(mx.random.key(seed), 3)
    shapes = [(1, H, t, D), (1, HK, t, D), (1, HK, t, D)]
    return tuple(mx.random.normal(s, key=kk) for s, kk in zip(shapes, k)), {}
