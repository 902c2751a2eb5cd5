"""Linear attention by chunks, FlashQLA's loop shape: q, k and v cut into chunks of 8
(`x[:, :, i]` of a reshape), each chunk's products that read no state (its masked scores,
the scores times its values, its keys' outer products with its values) the same at every
chunk, and a state carried from chunk to chunk."""
import mlx.core as mx

C = 8


def fn(q, k, v):
    b, h, t, d = q.shape
    n = t // C
    q, k, v = (x.reshape(b, h, n, C, d) for x in (q, k, v))
    state = mx.zeros((b, h, d, d))
    out = []
    for i in range(n):
        qi, ki, vi = q[:, :, i], k[:, :, i], v[:, :, i]
        inner = mx.tril(qi @ ki.swapaxes(-1, -2))
        out.append(qi @ state + inner @ vi)
        state = state + ki.swapaxes(-1, -2) @ vi
    return mx.concatenate(out, axis=2)


def input_factory(size_label, seed):
    t = {"small": 16, "typical": 32, "large": 64}[size_label]
    ks = mx.random.split(mx.random.key(seed), 3)
    return tuple(mx.random.normal((1, 2, t, 8), key=key) for key in ks), {}
