"""A LoRA layer in PyTorch's weight layout: the low-rank delta formed per call and transposed,
x @ (B @ A).T, where (x @ A.T) @ B.T does a fraction of the work."""
import mlx.core as mx

N, R = 64, 4
_ka, _kb = mx.random.split(mx.random.key(7))
A = mx.random.normal((R, N), key=_ka) * N**-0.5
B = mx.random.normal((N, R), key=_kb) * 0.1
ROWS = {"small": 4, "typical": 32, "large": 128}


def fn(x):
    return x @ (B @ A).T * 2.0


def input_factory(size_label, seed):
    return (mx.random.normal((ROWS[size_label], N), key=mx.random.key(seed)),), {}
