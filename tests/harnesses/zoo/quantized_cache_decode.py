"""mlx_lm.models.llama.Attention (mistral-style GQA 8:2, head_dim 64) at decode with mlx-lm's
QuantizedKVCache (8-bit, group 64): the six quantized buffers (uint32 packed, scales, biases for
keys and values; capacity 256) are inputs and written in place (mx.quantize of the new k/v, then
slice-assign), attention via base.quantized_scaled_dot_product_attention (quantized_matmul on the
keys_and_values()[..., :offset, :] slices). Held = len(positions)."""
import mlx.core as mx
from mlx_lm.models import llama
from mlx_lm.models.cache import QuantizedKVCache

HIDDEN, HEADS, KV, HD, CAP = 512, 8, 2, 64, 256
ARGS = llama.ModelArgs(model_type="llama", hidden_size=HIDDEN, num_hidden_layers=1, intermediate_size=1024,
                       num_attention_heads=HEADS, rms_norm_eps=1e-5, vocab_size=100, num_key_value_heads=KV)
mx.random.seed(33)
ATTN = llama.Attention(ARGS)
mx.eval(ATTN.parameters())
SIZES = {"small": (1, 16), "typical": (1, 100), "large": (2, 230)}
STEP_DIMS = {7: [0]}


def fn(x, kq, ks, kb, vq, vs, vb, positions):
    cache = QuantizedKVCache(group_size=64, bits=8)
    cache.keys, cache.values, cache.offset = [kq, ks, kb], [vq, vs, vb], positions.shape[0]
    out = ATTN(x, mask=None, cache=cache)
    return (out, *cache.keys, *cache.values)


def input_factory(size_label, seed):
    b, held = SIZES[size_label]
    k = mx.random.split(mx.random.key(seed), 3)
    x = mx.random.normal((b, 1, HIDDEN), key=k[0])
    kq, ks, kb = mx.quantize(mx.random.normal((b, KV, CAP, HD), key=k[1]), group_size=64, bits=8)
    vq, vs, vb = mx.quantize(mx.random.normal((b, KV, CAP, HD), key=k[2]), group_size=64, bits=8)
    return (x, kq, ks, kb, vq, vs, vb, mx.zeros((held,), dtype=mx.int32)), {}
