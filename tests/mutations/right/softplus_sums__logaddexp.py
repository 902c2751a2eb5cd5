"""Softplus as logaddexp(0, x): finite where log(1 + exp(x)) overflows (float64 is finite there)."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/softplus_sums.py"


def optimized(x, y):
    gate = mx.logaddexp(mx.zeros_like(x[:, :4]), x[:, :4])
    return mx.concatenate([gate, mx.cumsum(y, axis=1)], axis=1)
