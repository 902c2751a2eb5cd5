"""A MoE router as bfloat16 models run it: scores rounded to bfloat16, top-k experts by
argpartition, their values combined with softmax weights. bfloat16 makes near ties that
float64 breaks otherwise in some rows: the reference follows fn's own choices."""
import mlx.core as mx

ROWS = {"small": 16, "typical": 64, "large": 256}
HIDDEN, EXPERTS, TOP_K, OUT = 64, 64, 4, 32


def fn(x, w, v):
    scores = (x @ w).astype(mx.bfloat16)
    inds = mx.argpartition(-scores, kth=TOP_K - 1, axis=-1)[:, :TOP_K]
    gates = mx.take_along_axis(mx.softmax(scores.astype(mx.float32), axis=-1), inds, axis=-1)
    return (gates[..., None] * v[inds]).sum(axis=1)


def input_factory(size_label, seed):
    kx, kw, kv = mx.random.split(mx.random.key(seed), 3)
    x = mx.random.normal((ROWS[size_label], HIDDEN), key=kx)
    w = mx.random.normal((HIDDEN, EXPERTS), key=kw) * 0.1
    return (x, w, mx.random.normal((EXPERTS, OUT), key=kv)), {}
