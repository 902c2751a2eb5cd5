"""Two of mlx-lm's Qwen3 MoE blocks (4-bit experts) in a row: two routers' choices, and the
float64 reference's own gathers between them, which must not take fn's choices."""
import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.qwen3_moe import ModelArgs, Qwen3MoeSparseMoeBlock

HIDDEN, INTER, EXPERTS, TOP_K = 256, 128, 16, 4
ARGS = ModelArgs(
    model_type="qwen3_moe", hidden_size=HIDDEN, num_hidden_layers=2, intermediate_size=4 * HIDDEN,
    num_attention_heads=4, num_experts=EXPERTS, num_experts_per_tok=TOP_K, decoder_sparse_step=1,
    mlp_only_layers=[], moe_intermediate_size=INTER, rms_norm_eps=1e-6, vocab_size=1000,
    num_key_value_heads=4, head_dim=64, rope_theta=1e6, tie_word_embeddings=False,
    max_position_embeddings=4096, norm_topk_prob=True)
mx.random.seed(5)
BLOCKS = [Qwen3MoeSparseMoeBlock(ARGS) for _ in range(2)]
for b in BLOCKS:
    nn.quantize(b, group_size=64, bits=4, class_predicate=lambda path, m: path.startswith("switch_mlp.") and hasattr(m, "to_quantized"))
mx.eval([b.parameters() for b in BLOCKS])
TOKENS = {"small": 1, "typical": 8, "large": 32}


def fn(x):
    return BLOCKS[1](BLOCKS[0](x))


def input_factory(size_label, seed):
    return (mx.random.normal((TOKENS[size_label], 1, HIDDEN), key=mx.random.key(seed)),), {}
