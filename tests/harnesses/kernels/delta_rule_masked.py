"""mlx-lm's gated delta update without its kernel (`use_kernel=False`), as Qwen3-Next calls it
with a padding mask: a step the mask drops keeps the state it had (`mx.where(mask, state,
old_state)`, a boolean operand per step); scalar gates from `A_log`, `a` and `dt_bias`, one key
head for two value heads."""
import mlx.core as mx
from mlx_lm.models.gated_delta import gated_delta_update

T = {"small": 16, "typical": 24, "large": 32}


def fn(q, k, v, a, b, A_log, dt_bias, mask):
    return gated_delta_update(q, k, v, a, b, A_log, dt_bias, state=None, mask=mask, use_kernel=False)


def input_factory(size_label, seed):
    t = T[size_label]
    ks = mx.random.split(mx.random.key(seed), 8)
    q = mx.random.normal((2, t, 1, 16), key=ks[0]) * 0.25
    k = mx.random.normal((2, t, 1, 16), key=ks[1]) * 0.25
    v = mx.random.normal((2, t, 2, 8), key=ks[2])
    a = mx.random.normal((2, t, 2), key=ks[3])
    b = mx.random.normal((2, t, 2), key=ks[4])
    A_log = mx.random.uniform(-1.0, 0.5, (2,), key=ks[5])
    dt_bias = mx.random.normal((2,), key=ks[6]) * 0.5
    # The second sequence is left-padded: its first three tokens are masked out.
    mask = mx.concatenate([mx.ones((1, t), dtype=mx.bool_), mx.arange(t)[None] >= 3], axis=0)
    return (q, k, v, a, b, A_log, dt_bias, mask), {}
