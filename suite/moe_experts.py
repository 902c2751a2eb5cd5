"""A Qwen3-MoE expert MLP with 4-bit quantized experts through gather_qmm (mlx-lm's SwitchGLU), decode and prefill token counts."""
import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.switch_layers import SwitchGLU
from _sizes import pick

HIDDEN, INTER, EXPERTS, TOP_K = pick((2048, 768, 128, 8), (256, 128, 16, 4))
TOKENS = pick({"small": 1, "typical": 64, "large": 1024}, {"small": 1, "typical": 16, "large": 64})
mx.random.seed(3)
MLP = SwitchGLU(HIDDEN, INTER, EXPERTS)
nn.quantize(MLP, group_size=64, bits=4)
mx.eval(MLP.parameters())


def fn(x, inds):
    return MLP(x, inds)


def input_factory(size_label, seed):
    n = TOKENS[size_label]
    kx, ki = mx.random.split(mx.random.key(seed))
    scores = mx.random.normal((n, EXPERTS), key=ki)
    inds = mx.argpartition(-scores, TOP_K - 1, axis=-1)[:, :TOP_K].astype(mx.int32)
    return (mx.random.normal((n, HIDDEN), key=kx), inds), {}
