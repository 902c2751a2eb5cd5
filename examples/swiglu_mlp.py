"""A SwiGLU MLP: (silu(x @ Wg) * (x @ Wu)) @ Wd, with silu written by hand."""

import mlx.core as mx

DIM, HIDDEN = 256, 688
_kg, _ku, _kd = mx.random.split(mx.random.key(0), 3)
W_GATE = mx.random.normal((DIM, HIDDEN), key=_kg) * DIM**-0.5
W_UP = mx.random.normal((DIM, HIDDEN), key=_ku) * DIM**-0.5
W_DOWN = mx.random.normal((HIDDEN, DIM), key=_kd) * HIDDEN**-0.5
mx.eval(W_GATE, W_UP, W_DOWN)

TOKENS = {"small": 4, "typical": 64, "large": 256}


def fn(x):
    g = x @ W_GATE
    u = x @ W_UP
    return (g * mx.sigmoid(g) * u) @ W_DOWN


def input_factory(size_label, seed):
    return (mx.random.normal((TOKENS[size_label], DIM), key=mx.random.key(seed)),), {}
