"""mx.concatenate, mx.split (even and at indices) and mx.pad (constant and edge)."""
import mlx.core as mx

SHAPES = {"small": (4, 16), "typical": (64, 256), "large": (512, 1024)}


def fn(x, y):
    c = mx.concatenate([x, y, x * 2.0], axis=-1)
    a, b, d = mx.split(c, 3, axis=-1)
    p, q = mx.split(a + b - d, [x.shape[0] // 4], axis=0)
    padded = mx.pad(p, [(1, 2), (0, 3)], constant_values=0.5)
    edged = mx.pad(q, ((0, 0), (2, 2)), mode="edge")
    return padded, edged, mx.concatenate([p, q], axis=0)


def input_factory(size_label, seed):
    kx, ky = mx.random.split(mx.random.key(seed))
    return (mx.random.normal(SHAPES[size_label], key=kx), mx.random.normal(SHAPES[size_label], key=ky)), {}
