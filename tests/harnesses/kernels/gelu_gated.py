"""GELU-gated products (erf form and tanh form), as a GeGLU MLP writes them: one elementwise kernel."""
import math

import mlx.core as mx


def fn(a, b, c):
    erf_gelu = 0.5 * a * (1.0 + mx.erf(a / math.sqrt(2.0)))
    tanh_gelu = 0.5 * c * (1.0 + mx.tanh(math.sqrt(2.0 / math.pi) * (c + 0.044715 * c**3)))
    return erf_gelu * b + tanh_gelu * b


def input_factory(size_label, seed):
    t = {"small": 4, "typical": 32, "large": 128}[size_label]
    ka, kb, kc = mx.random.split(mx.random.key(seed), 3)
    return tuple(mx.random.normal((t, 256), key=k) for k in (ka, kb, kc)), {}
