"""A SwiGLU MLP with silu by hand: (silu(x Wg) * (x Wu)) Wd."""
import mlx.core as mx
from _sizes import pick

DIM, HIDDEN = pick((1024, 2816), (256, 688))
TOKENS = pick({"small": 16, "typical": 512, "large": 4096}, {"small": 4, "typical": 64, "large": 256})
_kg, _ku, _kd = mx.random.split(mx.random.key(0), 3)
WG = mx.random.normal((DIM, HIDDEN), key=_kg) * DIM**-0.5
WU = mx.random.normal((DIM, HIDDEN), key=_ku) * DIM**-0.5
WD = mx.random.normal((HIDDEN, DIM), key=_kd) * HIDDEN**-0.5
mx.eval(WG, WU, WD)


def fn(x):
    g = x @ WG
    return (g * mx.sigmoid(g) * (x @ WU)) @ WD


def input_factory(size_label, seed):
    return (mx.random.normal((TOKENS[size_label], DIM), key=mx.random.key(seed)),), {}
