"""A recurrence unrolled over time as mlx-lm's reference ops write one: each step takes q, k
and g at t (`x[:, t]`), and the step's work that reads no state (the decay's exp, the key's
scaling) is the same primitive at every step, which one primitive over all steps does."""
import mlx.core as mx

H, D = 2, 8


def fn(q, k, g):
    state = mx.zeros((q.shape[0], H, D))
    ys = []
    for t in range(q.shape[1]):
        decay = mx.exp(g[:, t])[..., None]
        state = state * decay + k[:, t] * 0.5
        ys.append((state * q[:, t]).sum(-1))
    return mx.stack(ys, axis=1)


def input_factory(size_label, seed):
    t = {"small": 8, "typical": 16, "large": 32}[size_label]
    ks = mx.random.split(mx.random.key(seed), 3)
    q = mx.random.normal((2, t, H, D), key=ks[0])
    k = mx.random.normal((2, t, H, D), key=ks[1])
    g = -mx.abs(mx.random.normal((2, t, H), key=ks[2]))
    return (q, k, g), {}
