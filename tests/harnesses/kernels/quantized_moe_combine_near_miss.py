"""A near miss of quantized_moe_combine.py: each expert's output times its router weight,
summed over the hidden columns (`.sum(axis=2)`), not over the experts: no combine."""
import mlx.core as mx

EXPERTS, HIDDEN, INTER, TOP_K = 8, 128, 64, 2


def packed(rows, cols, seed):
    w = mx.random.normal((EXPERTS, rows, cols), key=mx.random.key(seed)) * 0.1
    return mx.quantize(w, group_size=64, bits=4)


GATE, UP, DOWN = packed(INTER, HIDDEN, 1), packed(INTER, HIDDEN, 2), packed(HIDDEN, INTER, 3)


def product(x, weights, experts):
    w, scales, biases = weights
    return mx.gather_qmm(x, w, scales, biases, rhs_indices=experts, transpose=True, group_size=64, bits=4)


def fn(x, logits):
    experts = mx.argpartition(-logits, TOP_K - 1, axis=-1)[:, :TOP_K]
    w = mx.softmax(mx.take_along_axis(logits, experts, axis=-1), axis=-1)
    xe = mx.expand_dims(x, (1, 2))
    g = product(xe, GATE, experts)
    h = g * mx.sigmoid(g) * product(xe, UP, experts)
    y = product(h, DOWN, experts).squeeze(2)
    return (y * w[:, :, None]).sum(axis=2)


def input_factory(size_label, seed):
    tokens = {"small": 1, "typical": 4, "large": 16}[size_label]
    kx, kl = mx.random.split(mx.random.key(seed))
    return (mx.random.normal((tokens, HIDDEN), key=kx), mx.random.normal((tokens, EXPERTS), key=kl)), {}
