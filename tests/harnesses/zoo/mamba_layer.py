"""One mlx-lm Mamba residual block: in_proj, a depthwise conv1d (MLX's Convolution primitive),
then the selective scan token by token; tiny random config, no cache."""
import mlx.core as mx
from mlx_lm.models import mamba

ARGS = mamba.ModelArgs(
    model_type="mamba",
    vocab_size=10,
    hidden_size=16,
    intermediate_size=32,
    state_size=8,
    num_hidden_layers=1,
    conv_kernel=4,
    use_bias=False,
    use_conv_bias=True,
    time_step_rank=4,
)
mx.random.seed(6)
LAYER = mamba.ResidualBlock(ARGS)
mx.eval(LAYER.parameters())

T = {"small": 8, "typical": 16, "large": 24}


def fn(x):
    return LAYER(x, None)


def input_factory(size_label, seed):
    return (mx.random.normal((1, T[size_label], ARGS.hidden_size), key=mx.random.key(seed)),), {}
