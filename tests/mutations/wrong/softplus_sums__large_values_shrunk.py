"""Values of y beyond 3e4 in magnitude shrunk by 1.5e-5 before the running sums: seen only on
the x1e4 inputs, where the softplus beside them overflows (an overflow elsewhere does not make
the sums ill-conditioned)."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/softplus_sums.py"


def optimized(x, y):
    gate = mx.log(1.0 + mx.exp(x[:, :4]))
    y = mx.where(mx.abs(y) > 3e4, y * (1 - 1.5e-5), y)
    return mx.concatenate([gate, mx.cumsum(y, axis=1)], axis=1)
