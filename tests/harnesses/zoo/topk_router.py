"""MoE top-k gating: router matmul, softmax, mx.argpartition for the top-k experts, mx.take_along_axis
for their scores, renormalized."""
import mlx.core as mx

D, E, K = 128, 16, 4
WR = mx.random.normal((D, E), key=mx.random.key(31)) * D**-0.5
mx.eval(WR)
TOKENS = {"small": 4, "typical": 128, "large": 2048}


def fn(x):
    gates = mx.softmax(x @ WR, axis=-1, precise=True)
    inds = mx.argpartition(-gates, kth=K - 1, axis=-1)[..., :K]
    scores = mx.take_along_axis(gates, inds, axis=-1)
    scores = scores / scores.sum(axis=-1, keepdims=True)
    return inds, scores


def input_factory(size_label, seed):
    return (mx.random.normal((TOKENS[size_label], D), key=mx.random.key(seed)),), {}
