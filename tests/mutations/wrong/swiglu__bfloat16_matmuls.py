"""The projections in bfloat16: a silently narrowed dtype."""
import mlx.core as mx

HARNESS = "examples/swiglu_mlp.py"

DIM, HIDDEN = 256, 688
_kg, _ku, _kd = mx.random.split(mx.random.key(0), 3)
W_GATE = mx.random.normal((DIM, HIDDEN), key=_kg) * DIM**-0.5
W_UP = mx.random.normal((DIM, HIDDEN), key=_ku) * DIM**-0.5
W_DOWN = mx.random.normal((HIDDEN, DIM), key=_kd) * HIDDEN**-0.5
mx.eval(W_GATE, W_UP, W_DOWN)  # the harness's weights, rebuilt from its key


def optimized(x):
    xb = x.astype(mx.bfloat16)
    g = (xb @ W_GATE.astype(mx.bfloat16)).astype(mx.float32)
    u = (xb @ W_UP.astype(mx.bfloat16)).astype(mx.float32)
    return (g * mx.sigmoid(g) * u) @ W_DOWN
