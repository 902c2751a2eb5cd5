"""mx.fast.scaled_dot_product_attention with mask="causal" (GQA: 8 query heads, 2 key/value heads)."""
import mlx.core as mx

HQ, HKV, HD = 8, 2, 64
SHAPES = {"small": (1, 8), "typical": (1, 128), "large": (1, 256)}


def fn(q, k, v):
    return mx.fast.scaled_dot_product_attention(q, k, v, scale=HD**-0.5, mask="causal")


def input_factory(size_label, seed):
    b, t = SHAPES[size_label]
    kq, kk, kv = mx.random.split(mx.random.key(seed), 3)
    return (
        mx.random.normal((b, HQ, t, HD), key=kq),
        mx.random.normal((b, HKV, t, HD), key=kk),
        mx.random.normal((b, HKV, t, HD), key=kv),
    ), {}
