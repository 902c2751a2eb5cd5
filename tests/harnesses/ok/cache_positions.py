"""A decode step as mlx-lm's KVCache takes it: the new keys go to position `held` (the
positions' count) of a buffer of some capacity, grown when full; STEP_DIMS says `held`
changes at every call. A program built for `held < capacity` must not run at capacity."""
import mlx.core as mx

SIZES = {"small": (1, 200, 512), "typical": (2, 400, 512), "large": (2, 700, 1024)}  # batch, held, capacity
STEP_DIMS = {1: [1], 2: [0]}


def fn(x, keys, positions):
    held = positions.shape[0]
    if held + 1 > keys.shape[1]:
        keys = mx.concatenate([keys, mx.zeros_like(keys)], axis=1)
    keys[:, held : held + 1, :] = mx.tanh(x)
    k = keys[:, : held + 1, :]
    return mx.sum(mx.exp(k) / (1 + mx.exp(k)) * k, axis=1), keys


def input_factory(size_label, seed):
    batch, held, capacity = SIZES[size_label]
    k = mx.random.split(mx.random.key(seed))
    x = mx.random.normal((batch, 1, 64), key=k[0])
    keys = mx.random.normal((batch, capacity, 64), key=k[1])
    return (x, keys, mx.zeros((held,), dtype=mx.int32)), {}
