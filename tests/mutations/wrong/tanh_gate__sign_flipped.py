"""sigmoid(-t): 1 / (1 + exp(t)), the gate's complement (a sign lost on the way)."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/tanh_gate.py"


def optimized(x, v):
    return mx.sigmoid(-mx.tanh(x)) * v
