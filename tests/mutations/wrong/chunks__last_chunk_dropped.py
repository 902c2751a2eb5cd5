"""The loop over chunks stops one chunk early."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/chunks.py"


def optimized(x):
    state = mx.zeros((x.shape[0], 16))
    for c in range(x.shape[1] // 16 - 1):
        state = 0.9 * state + x[:, c * 16 : (c + 1) * 16]
    window = x[:, 1:17].sum(axis=-1, keepdims=True)
    return state * 0.5 + window
