"""Qwen3-style attention written naively: projections, per-head q/k RMSNorm, RoPE, GQA 4:1 via repeat, manual causal softmax."""
import mlx.core as mx
from _sizes import pick

HIDDEN, HEADS, KV_HEADS, HEAD_DIM = pick((2048, 16, 4, 128), (256, 8, 2, 32))
TOKENS = pick({"small": 32, "typical": 512, "large": 2048}, {"small": 8, "typical": 64, "large": 128})
_k = mx.random.split(mx.random.key(1), 6)
WQ = mx.random.normal((HIDDEN, HEADS * HEAD_DIM), key=_k[0]) * HIDDEN**-0.5
WK = mx.random.normal((HIDDEN, KV_HEADS * HEAD_DIM), key=_k[1]) * HIDDEN**-0.5
WV = mx.random.normal((HIDDEN, KV_HEADS * HEAD_DIM), key=_k[2]) * HIDDEN**-0.5
WO = mx.random.normal((HEADS * HEAD_DIM, HIDDEN), key=_k[3]) * (HEADS * HEAD_DIM) ** -0.5
QN = 1.0 + 0.1 * mx.random.normal((HEAD_DIM,), key=_k[4])
KN = 1.0 + 0.1 * mx.random.normal((HEAD_DIM,), key=_k[5])
mx.eval(WQ, WK, WV, WO, QN, KN)


def rms(x, w):
    return x * mx.rsqrt(mx.mean(x * x, axis=-1, keepdims=True) + 1e-6) * w


def rope(x):
    t, d = x.shape[-2], x.shape[-1]
    half = d // 2
    inv = 1.0 / (1000000.0 ** (mx.arange(0, half, dtype=mx.float32) / half))
    ang = mx.arange(t, dtype=mx.float32)[:, None] * inv[None, :]
    c, s = mx.cos(ang), mx.sin(ang)
    x1, x2 = x[..., :half], x[..., half:]
    return mx.concatenate([x1 * c - x2 * s, x1 * s + x2 * c], axis=-1)


def fn(x):
    b, t, _ = x.shape
    q = rms((x @ WQ).reshape(b, t, HEADS, HEAD_DIM), QN).transpose(0, 2, 1, 3)
    k = rms((x @ WK).reshape(b, t, KV_HEADS, HEAD_DIM), KN).transpose(0, 2, 1, 3)
    v = (x @ WV).reshape(b, t, KV_HEADS, HEAD_DIM).transpose(0, 2, 1, 3)
    q, k = rope(q), rope(k)
    k = mx.repeat(k, HEADS // KV_HEADS, axis=1)
    v = mx.repeat(v, HEADS // KV_HEADS, axis=1)
    scores = (q @ k.transpose(0, 1, 3, 2)) * HEAD_DIM**-0.5
    idx = mx.arange(t)
    scores = mx.where(idx[:, None] >= idx[None, :], scores, -mx.inf)
    scores = scores - mx.max(scores, axis=-1, keepdims=True)
    p = mx.exp(scores)
    p = p / mx.sum(p, axis=-1, keepdims=True)
    return (p @ v).transpose(0, 2, 1, 3).reshape(b, t, -1) @ WO


def input_factory(size_label, seed):
    return (mx.random.normal((1, TOKENS[size_label], HIDDEN), key=mx.random.key(seed)),), {}
