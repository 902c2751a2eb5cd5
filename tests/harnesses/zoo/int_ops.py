"""Integer arithmetic on int32: //, %, bitwise and/or/xor/shifts, negation, astype to and from float."""
import mlx.core as mx

SHAPES = {"small": (8, 16), "typical": (256, 256), "large": (1024, 1024)}


def fn(a, b):
    q = a // b
    r = a % b
    bits = (a & 0xFF) | (b << 3)
    x = (bits ^ (a >> 2)) - r * 3
    f = x.astype(mx.float32) * 0.5
    back = (f + q.astype(mx.float32)).astype(mx.int32)
    u = (a.astype(mx.uint32) >> 1) % 7
    return back, u, -q, mx.abs(r - 5)


def input_factory(size_label, seed):
    ka, kb = mx.random.split(mx.random.key(seed))
    a = mx.random.randint(-1000, 1000, SHAPES[size_label], dtype=mx.int32, key=ka)
    b = mx.random.randint(1, 50, SHAPES[size_label], dtype=mx.int32, key=kb)
    return (a, b), {}
