"""Embedding lookup: int32 token ids index a table (TABLE[ids]), plus mx.take on both axes, a
scalar index along a middle axis and two index arrays at once."""
import mlx.core as mx

V, D = 1000, 64
TABLE = mx.random.normal((V, D), key=mx.random.key(41))
mx.eval(TABLE)
SHAPES = {"small": (1, 8), "typical": (4, 128), "large": (16, 512)}


def fn(ids):
    e = TABLE[ids]
    t = mx.take(TABLE, ids, axis=0)
    cols = mx.take(e, mx.array([0, 3, 5], dtype=mx.int32), axis=-1)
    flat = mx.take(TABLE, ids.flatten()[:4])
    middle = e[:, 2]
    pairs = TABLE[ids, ids % D]
    return e + t, cols, flat, middle, pairs


def input_factory(size_label, seed):
    return (mx.random.randint(0, V, SHAPES[size_label], dtype=mx.int32, key=mx.random.key(seed)),), {}
