"""The decayed state unrolled with the 0.5 folded into it."""
import mlx.core as mx

HARNESS = "tests/mutations/harnesses/chunks.py"


def optimized(x):
    state = mx.zeros((x.shape[0], 16))
    for c in range(x.shape[1] // 16):
        state = state * 0.9 + x[:, c * 16 : (c + 1) * 16] * 0.5
    return state + x[:, 1:17].sum(axis=-1, keepdims=True)
