"""mlx-lm's own Mamba step (`MambaBlock.ssm_step`) in the loop of `_process_sequence`, its conv
left out: each step projects x_t by biased `nn.Linear`s (AddMM) and splits it into delta, B, C
inside the loop; the state [B, Din, N] is None at the first step (no decay term there)."""
import mlx.core as mx
from mlx_lm.models.mamba import MambaBlock, ModelArgs

T = {"small": 16, "typical": 24, "large": 32}
DIN, N, R = 32, 8, 4
ARGS = ModelArgs(
    model_type="mamba",
    vocab_size=10,
    hidden_size=16,
    intermediate_size=DIN,
    state_size=N,
    num_hidden_layers=1,
    conv_kernel=4,
    use_bias=False,
    use_conv_bias=True,
    time_step_rank=R,
)
mx.random.seed(7)
BLOCK = MambaBlock(ARGS)
BLOCK.dt_proj.bias = mx.random.uniform(-4.0, -2.0, (DIN,))
mx.eval(BLOCK.parameters())


def fn(x):
    A = -mx.exp(BLOCK.A_log)
    state = None
    ys = []
    for t in range(x.shape[1]):
        y, state = BLOCK.ssm_step(x[:, t], A, state)
        ys.append(y)
    return mx.stack(ys, axis=1), state


def input_factory(size_label, seed):
    return (mx.random.normal((1, T[size_label], DIN), key=mx.random.key(seed)),), {}
