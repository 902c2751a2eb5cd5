"""Gathers, top-k routing, scans, concatenate/split/pad, where and integer arithmetic in one function."""
import mlx.core as mx

EMB = mx.random.normal((50, 16), key=mx.random.key(9))
mx.eval(EMB)
N = {"small": 4, "typical": 16, "large": 64}


def fn(ids, x):
    e = EMB[ids] + mx.take(EMB, ids, axis=0)
    p = mx.softmax(x, axis=-1)
    top = mx.argpartition(-p, 2, axis=-1)[..., :2]
    w = mx.take_along_axis(p, top, axis=-1)
    c = mx.cumsum(e, axis=0)
    a, b = mx.split(mx.concatenate([c, e], axis=-1), 2, axis=-1)
    padded = mx.pad(a - b, [(0, 0), (1, 1)])
    clipped = mx.where(padded > 0, mx.minimum(padded, 1.0), mx.abs(padded) * 0.5)
    ints = (ids * 7 + 3) // 2 % 5
    return clipped, w.sum(axis=-1), ints, mx.argmax(x, axis=-1), mx.logsumexp(x, axis=-1)


def input_factory(size_label, seed):
    n = N[size_label]
    k1, k2 = mx.random.split(mx.random.key(seed))
    ids = mx.random.randint(0, 50, (n,), key=k1).astype(mx.int32)
    return (ids, mx.random.normal((n, 8), key=k2)), {}
