"""Near misses of batching a loop's iterations: the loop visits every other step (its
slices are not every lane of the axis), and the per-step primitive alternates (exp at even
steps, sin at odd ones): no primitive is applied to every lane."""
import mlx.core as mx
from unrolled_lanes import input_factory  # noqa: F401 (the same inputs)

H, D = 2, 8


def fn(q, k, g):
    state = mx.zeros((q.shape[0], H, D))
    ys = []
    for t in range(0, q.shape[1], 2):
        state = state * mx.exp(g[:, t])[..., None] + k[:, t] * 0.5
        ys.append((state * q[:, t]).sum(-1))
    for t in range(q.shape[1]):
        gate = mx.exp(g[:, t]) if t % 2 == 0 else mx.sin(g[:, t])
        ys.append(gate * state.sum(-1))
    return mx.stack(ys, axis=1)
