"""One mlx-lm Gemma 3 (text) decoder layer: q/k norms, 4 RMSNorms, gelu_approx MLP and the
@mx.compile'd clip_residual; tiny random config, causal mask, no KV cache."""
import mlx.core as mx
from mlx_lm.models import gemma3_text

ARGS = gemma3_text.ModelArgs(
    model_type="gemma3_text",
    hidden_size=128,
    num_hidden_layers=1,
    intermediate_size=256,
    num_attention_heads=4,
    head_dim=32,
    rms_norm_eps=1e-6,
    vocab_size=100,
    num_key_value_heads=1,
    query_pre_attn_scalar=32,
    sliding_window=512,
    sliding_window_pattern=6,
)
mx.random.seed(3)
LAYER = gemma3_text.TransformerBlock(ARGS, layer_idx=0)
mx.eval(LAYER.parameters())

SHAPES = {"small": (1, 4), "typical": (1, 16), "large": (2, 32)}


def fn(x):
    return LAYER(x, mask="causal", cache=None)


def input_factory(size_label, seed):
    b, t = SHAPES[size_label]
    return (mx.random.normal((b, t, ARGS.hidden_size), key=mx.random.key(seed)),), {}
