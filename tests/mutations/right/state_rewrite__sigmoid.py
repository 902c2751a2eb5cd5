"""The state rewritten as fn rewrites it, the hand sigmoid as mx.sigmoid (other rounding)."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/state_rewrite.py"


def optimized(state, x):
    state[...] = state * 0.9 + 0.1 * mx.tanh(x)
    return mx.sum(mx.sigmoid(state) * state, axis=-1)
