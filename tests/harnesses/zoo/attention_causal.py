"""Multi-head attention written by hand with an additive causal mask built from mx.triu(mx.full(..., -inf), k=1)."""
import math

import mlx.core as mx

D, H = 128, 4
HD = D // H
_k = mx.random.split(mx.random.key(11), 4)
WQ, WK, WV, WO = (mx.random.normal((D, D), key=k) * D**-0.5 for k in _k)
mx.eval(WQ, WK, WV, WO)

SHAPES = {"small": (1, 8), "typical": (2, 32), "large": (4, 64)}


def fn(x):
    b, t, _ = x.shape
    q = (x @ WQ).reshape(b, t, H, HD).transpose(0, 2, 1, 3)
    k = (x @ WK).reshape(b, t, H, HD).transpose(0, 2, 1, 3)
    v = (x @ WV).reshape(b, t, H, HD).transpose(0, 2, 1, 3)
    mask = mx.triu(mx.full((t, t), -mx.inf), k=1)
    scores = (q @ k.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(HD)) + mask
    probs = mx.softmax(scores, axis=-1)
    out = (probs @ v).transpose(0, 2, 1, 3).reshape(b, t, D)
    return out @ WO


def input_factory(size_label, seed):
    b, t = SHAPES[size_label]
    return (mx.random.normal((b, t, D), key=mx.random.key(seed)),), {}
