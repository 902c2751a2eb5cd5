"""Qwen3 attention as mlx-lm writes it (mx.fast.rms_norm, mx.fast.rope, mx.fast SDPA), no KV cache."""
import mlx.core as mx
from mlx_lm.models import qwen3
from _sizes import pick

HIDDEN, HEADS, KV_HEADS, HEAD_DIM = pick((2048, 16, 4, 128), (256, 8, 2, 32))
TOKENS = pick({"small": 32, "typical": 512, "large": 2048}, {"small": 8, "typical": 64, "large": 128})
ARGS = qwen3.ModelArgs(model_type="qwen3", hidden_size=HIDDEN, num_hidden_layers=1, intermediate_size=2 * HIDDEN,
                       num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM, rms_norm_eps=1e-6,
                       vocab_size=1000, max_position_embeddings=8192, rope_theta=1000000.0, tie_word_embeddings=False)
mx.random.seed(2)
ATTN = qwen3.Attention(ARGS)
mx.eval(ATTN.parameters())


def fn(x):
    return ATTN(x, mask="causal", cache=None)


def input_factory(size_label, seed):
    return (mx.random.normal((1, TOKENS[size_label], HIDDEN), key=mx.random.key(seed)),), {}
