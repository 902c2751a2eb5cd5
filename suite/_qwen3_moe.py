"""mlx-lm's Qwen3-30B-A3B sparse MoE block (router 8-bit, experts 4-bit, groups of 64) for
the MoE rows: BLOCK, and HIDDEN for their inputs."""
import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.qwen3_moe import ModelArgs, Qwen3MoeSparseMoeBlock
from _sizes import pick

HIDDEN, INTER, EXPERTS, TOP_K = pick((2048, 768, 128, 8), (256, 128, 16, 4))
ARGS = ModelArgs(
    model_type="qwen3_moe", hidden_size=HIDDEN, num_hidden_layers=1, intermediate_size=4 * HIDDEN,
    num_attention_heads=32, num_experts=EXPERTS, num_experts_per_tok=TOP_K, decoder_sparse_step=1,
    mlp_only_layers=[], moe_intermediate_size=INTER, rms_norm_eps=1e-6, vocab_size=1000,
    num_key_value_heads=4, head_dim=128, rope_theta=1e6, tie_word_embeddings=False,
    max_position_embeddings=4096, norm_topk_prob=True)
mx.random.seed(5)
BLOCK = Qwen3MoeSparseMoeBlock(ARGS)
nn.quantize(BLOCK, group_size=64, bits=8, class_predicate=lambda path, m: path == "gate")
nn.quantize(BLOCK, group_size=64, bits=4,
            class_predicate=lambda path, m: path.startswith("switch_mlp.") and hasattr(m, "to_quantized"))
mx.eval(BLOCK.parameters())
