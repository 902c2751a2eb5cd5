"""T = (I - A)^-1 - I for the strictly lower A, its rows accumulated by matrix products:
row i is A's row i plus A's row i times the rows of T made so far."""
import mlx.core as mx

C = 8
BATCH = {"small": 4, "typical": 16, "large": 64}


def fn(a):
    a = mx.tril(a, k=-1)
    t = mx.zeros_like(a)
    for i in range(1, C):
        row = a[:, i : i + 1, :] + a[:, i : i + 1, :i] @ t[:, :i, :]
        t = mx.concatenate([t[:, :i, :], row, t[:, i + 1 :, :]], axis=1)
    return t


def input_factory(size_label, seed):
    return (mx.random.normal((BATCH[size_label], C, C), key=mx.random.key(seed)) * 0.3,), {}
