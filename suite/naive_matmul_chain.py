"""(x @ A) @ B with a tall x: the other association is far cheaper."""
import mlx.core as mx
from _sizes import pick

N, R = pick((8192, 128), (1024, 64))
ROWS = pick({"small": 512, "typical": 4096, "large": 8192}, {"small": 128, "typical": 512, "large": 1024})
_ka, _kb = mx.random.split(mx.random.key(4))
A = mx.random.normal((R, N), key=_ka) * R**-0.5
B = mx.random.normal((N, R), key=_kb) * N**-0.5
mx.eval(A, B)


def fn(x):
    return (x @ A) @ B


def input_factory(size_label, seed):
    return (mx.random.normal((ROWS[size_label], R), key=mx.random.key(seed)),), {}
