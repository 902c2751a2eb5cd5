"""Quantized experts written by hand (not mlx-lm's SwitchGLU): gate and up through
mx.gather_qmm on the same token rows and experts, SwiGLU spelled sigmoid-first, then the
down projection; 8-bit weights in groups of 32."""
import mlx.core as mx

EXPERTS, HIDDEN, INTER, TOP_K = 8, 128, 64, 2


def packed(rows, cols, seed):
    w = mx.random.normal((EXPERTS, rows, cols), key=mx.random.key(seed)) * 0.1
    return mx.quantize(w, group_size=32, bits=8)


GATE, UP, DOWN = packed(INTER, HIDDEN, 1), packed(INTER, HIDDEN, 2), packed(HIDDEN, INTER, 3)


def product(x, weights, experts):
    w, scales, biases = weights
    return mx.gather_qmm(x, w, scales, biases, rhs_indices=experts, transpose=True, group_size=32, bits=8)


def fn(x, experts):
    xe = x[:, None, None, :]
    g = product(xe, GATE, experts)
    u = product(xe, UP, experts)
    h = mx.sigmoid(g) * g * u
    return product(h, DOWN, experts).squeeze(-2)


def input_factory(size_label, seed):
    tokens = {"small": 1, "typical": 4, "large": 16}[size_label]
    kx, ke = mx.random.split(mx.random.key(seed))
    scores = mx.random.normal((tokens, EXPERTS), key=ke)
    experts = mx.argpartition(-scores, TOP_K - 1, axis=-1)[:, :TOP_K].astype(mx.uint32)
    return (mx.random.normal((tokens, HIDDEN), key=kx), experts), {}
