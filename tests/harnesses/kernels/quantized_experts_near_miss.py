"""Near misses of a fused gate/up SwiGLU: up reads other experts than gate, and a second
pair's gate is also returned (it must stay a value of its own)."""
import mlx.core as mx

EXPERTS, HIDDEN, INTER = 8, 128, 64


def packed(seed):
    w = mx.random.normal((EXPERTS, INTER, HIDDEN), key=mx.random.key(seed)) * 0.1
    return mx.quantize(w, group_size=64, bits=4)


GATE, UP = packed(1), packed(2)


def product(x, weights, experts):
    w, scales, biases = weights
    return mx.gather_qmm(x, w, scales, biases, rhs_indices=experts, transpose=True, group_size=64, bits=4)


def fn(x, experts, others):
    xe = x[:, None, None, :]
    g = product(xe, GATE, experts)
    mixed = g * mx.sigmoid(g) * product(xe, UP, others)
    g2 = product(xe, GATE, others)
    kept = g2 * mx.sigmoid(g2) * product(xe, UP, others)
    return mixed, kept, g2


def input_factory(size_label, seed):
    tokens = {"small": 1, "typical": 4, "large": 16}[size_label]
    kx, ke = mx.random.split(mx.random.key(seed))
    experts = mx.random.randint(0, EXPERTS, (tokens, 2), key=ke).astype(mx.uint32)
    return (mx.random.normal((tokens, HIDDEN), key=kx), experts, (experts + 1) % EXPERTS), {}
