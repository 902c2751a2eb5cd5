"""fn's outputs differ in their last bits from one call to the next, as a GPU kernel's may
where its summation order depends on more than the inputs' values: every other call sums
the two halves of each row apart. Deterministic as far as verification can tell."""
import mlx.core as mx

calls = [0]


def fn(x):
    calls[0] += 1
    if calls[0] % 2:
        return mx.sum(x, axis=-1)
    half = x.shape[-1] // 2
    return mx.sum(x[..., :half], axis=-1) + mx.sum(x[..., half:], axis=-1)


def input_factory(size_label, seed):
    n = {"small": 1000, "typical": 4000, "large": 16000}[size_label]
    return (mx.random.normal((64, n), key=mx.random.key(seed)),), {}
