"""GQA attention laid out [B, T, H, D] as Hugging Face ports keep it: K/V repeated on the
head axis (axis 2), scores and output by einsum, the softmax in float32 between casts."""
import mlx.core as mx

H, HK, D = 4, 2, 16
T = {"small": 8, "typical": 16, "large": 32}


def fn(q, k, v):
    k = mx.repeat(k, H // HK, axis=2)
    v = mx.repeat(v, H // HK, axis=2)
    w = mx.einsum("bqhd,bkhd->bhqk", q, k) * (D**-0.5)
    w = mx.softmax(w.astype(mx.float32), axis=-1).astype(q.dtype)
    return mx.einsum("bhqk,bkhd->bqhd", w, v)


def input_factory(size_label, seed):
    t = T[size_label]
    keys = mx.random.split(mx.random.key(seed), 3)
    shapes = [(1, t, H, D), (1, t, HK, D), (1, t, HK, D)]
    return tuple(mx.random.normal(s, key=kk) for s, kk in zip(shapes, keys)), {}
