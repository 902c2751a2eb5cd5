"""One mlx-lm Qwen2 decoder layer: its q/k/v projections carry biases (`nn.Linear` with a bias
traces as AddMM), tiny random config, causal mask."""
import mlx.core as mx
from mlx_lm.models import qwen2

ARGS = qwen2.ModelArgs(
    model_type="qwen2",
    hidden_size=128,
    num_hidden_layers=1,
    intermediate_size=256,
    num_attention_heads=4,
    num_key_value_heads=2,
    rms_norm_eps=1e-6,
    vocab_size=100,
    max_position_embeddings=512,
    rope_theta=1000000.0,
    tie_word_embeddings=False,
)
mx.random.seed(5)
LAYER = qwen2.TransformerBlock(ARGS)
mx.eval(LAYER.parameters())

SHAPES = {"small": (1, 4), "typical": (1, 16), "large": (2, 32)}


def fn(x):
    return LAYER(x, mask="causal", cache=None)


def input_factory(size_label, seed):
    b, t = SHAPES[size_label]
    return (mx.random.normal((b, t, ARGS.hidden_size), key=mx.random.key(seed)),), {}
