"""mx.fast.rope: a full-width non-traditional rotation and a partial traditional one with an offset."""
import mlx.core as mx

H, HD = 4, 64
SHAPES = {"small": (1, 8), "typical": (1, 128), "large": (4, 256)}


def fn(x):
    a = mx.fast.rope(x, HD, traditional=False, base=10000.0, scale=1.0, offset=0)
    b = mx.fast.rope(x, HD // 2, traditional=True, base=500000.0, scale=0.5, offset=3)
    return a + b


def input_factory(size_label, seed):
    b, t = SHAPES[size_label]
    return (mx.random.normal((b, H, t, HD), key=mx.random.key(seed)),), {}
