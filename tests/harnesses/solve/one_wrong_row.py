"""Near miss of inplace_rows.py: one row (the seventh) subtracts the sum it should add."""
import mlx.core as mx

C = 16
BATCH = {"small": 2, "typical": 8, "large": 32}


def fn(a):
    lower = mx.tril(mx.ones((C, C), dtype=mx.bool_), k=-1)
    attn = mx.where(lower, a, 0.0)
    for i in range(1, C):
        update = mx.sum(attn[..., i, :, None] * attn[..., :, :i], axis=-2)
        attn[..., i, :i] = attn[..., i, :i] + (-update if i == 7 else update)
    return attn + mx.eye(C)


def input_factory(size_label, seed):
    return (mx.random.normal((1, BATCH[size_label], C, C), key=mx.random.key(seed)) * 0.25,), {}
