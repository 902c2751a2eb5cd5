"""One mlx-lm Qwen3-MoE decoder layer; experts quantized to 4 bits, so the MoE runs through mx.gather_qmm."""
import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models import qwen3_moe
from mlx_lm.models.switch_layers import QuantizedSwitchLinear

ARGS = qwen3_moe.ModelArgs(
    model_type="qwen3_moe",
    hidden_size=128,
    num_hidden_layers=1,
    intermediate_size=256,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    rms_norm_eps=1e-6,
    vocab_size=100,
    num_experts=8,
    num_experts_per_tok=2,
    decoder_sparse_step=1,
    mlp_only_layers=[],
    moe_intermediate_size=64,
    rope_theta=10000.0,
    max_position_embeddings=512,
    tie_word_embeddings=False,
    norm_topk_prob=True,
)
mx.random.seed(2)
LAYER = qwen3_moe.Qwen3MoeDecoderLayer(ARGS, layer_idx=0)
# Quantize only the experts (SwitchLinear -> QuantizedSwitchLinear); attention and router stay float.
nn.quantize(LAYER, group_size=64, bits=4, class_predicate=lambda path, m: "switch_mlp" in path and hasattr(m, "to_quantized"))
assert isinstance(LAYER.mlp.switch_mlp.gate_proj, QuantizedSwitchLinear)
mx.eval(LAYER.parameters())

# small has one token (the decode shape), larger sizes have many (gather_qmm sorts indices above 64 rows).
SHAPES = {"small": (1, 1), "typical": (1, 16), "large": (2, 48)}


def fn(x):
    return LAYER(x, mask="causal", cache=None)


def input_factory(size_label, seed):
    b, t = SHAPES[size_label]
    return (mx.random.normal((b, t, ARGS.hidden_size), key=mx.random.key(seed)),), {}
