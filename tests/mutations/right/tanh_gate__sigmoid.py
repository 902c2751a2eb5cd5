"""mx.sigmoid of the tanh: 1 / (1 + exp(-t)), the same function."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/tanh_gate.py"


def optimized(x, v):
    return mx.sigmoid(mx.tanh(x)) * v
