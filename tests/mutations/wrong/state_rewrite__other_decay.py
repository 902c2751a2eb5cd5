"""The state written with another decay: the outputs follow it, so both are off."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/state_rewrite.py"


def optimized(state, x):
    state[...] = state * 0.89 + 0.1 * mx.tanh(x)
    return mx.sum(mx.sigmoid(state) * state, axis=-1)
