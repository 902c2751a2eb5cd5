"""The gate's NaN becomes 0: the same wherever z is not NaN, so only a NaN in z at a place
where v is finite tells them apart (NaN/Inf at the same places in every input hid it)."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/gated_sigmoid.py"


def optimized(z, v):
    return mx.nan_to_num(mx.sigmoid(z), nan=0.0) * v
