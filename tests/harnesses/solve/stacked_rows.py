"""(I + A)^-1 for the strictly lower A of each chunk, by forward substitution written
functionally: each row made from the rows before it, the rows stacked at the end."""
import mlx.core as mx

C = 12
BATCH = {"small": 3, "typical": 12, "large": 48}


def fn(a):
    strict = mx.arange(C)[:, None] > mx.arange(C)[None, :]
    a = mx.where(strict, a, 0.0)
    rows = [mx.zeros_like(a[..., 0, :]) + mx.eye(C)[0]]
    for i in range(1, C):
        done = mx.stack(rows, axis=-2)
        rows.append(mx.eye(C)[i] - mx.sum(a[..., i, :i, None] * done, axis=-2))
    return mx.stack(rows, axis=-2)


def input_factory(size_label, seed):
    return (mx.random.normal((BATCH[size_label], 2, C, C), key=mx.random.key(seed)) * 0.3,), {}
