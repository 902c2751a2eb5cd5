"""The projections in bfloat16: a silently narrowed dtype."""
import importlib.util
import pathlib

import mlx.core as mx

HARNESS = "examples/swiglu_mlp.py"

_spec = importlib.util.spec_from_file_location("_harness", pathlib.Path(__file__).parents[3] / HARNESS)
_h = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_h)


def optimized(x):
    xb = x.astype(mx.bfloat16)
    g = (xb @ _h.W_GATE.astype(mx.bfloat16)).astype(mx.float32)
    u = (xb @ _h.W_UP.astype(mx.bfloat16)).astype(mx.float32)
    return (g * mx.sigmoid(g) * u) @ _h.W_DOWN
