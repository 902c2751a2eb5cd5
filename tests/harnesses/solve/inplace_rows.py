"""The unit lower-triangular solve of a chunked linear attention, written as the torch
reference of the gated delta rule writes it: in-place row updates of the masked matrix
(each row plus itself times the rows above it), then the identity added."""
import mlx.core as mx

C = 16
BATCH = {"small": 2, "typical": 8, "large": 32}


def fn(k, beta):
    lower = mx.tril(mx.ones((C, C), dtype=mx.bool_), k=-1)
    attn = mx.where(lower, -(k * beta[..., None]) @ k.swapaxes(-1, -2), 0.0)
    for i in range(1, C):
        attn[..., i, :i] = attn[..., i, :i] + mx.sum(attn[..., i, :i, None] * attn[..., :i, :i], axis=-2)
    return attn + mx.eye(C)


def input_factory(size_label, seed):
    kk, kb = mx.random.split(mx.random.key(seed))
    k = mx.random.normal((1, BATCH[size_label], C, 16), key=kk) * 0.25
    return (k, mx.random.uniform(shape=(1, BATCH[size_label], C), key=kb)), {}
