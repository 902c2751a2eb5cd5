"""Plain causal linear attention (no decay), [B, H, T, D] layout; S += k^T v as a batched
outer-product matmul, o = q S, outputs concatenated along T after expanding a unit axis."""
import mlx.core as mx


def fn(q, k, v):
    B, H, T, Dk = q.shape
    Dv = v.shape[-1]
    S = mx.zeros((B, H, Dk, Dv), dtype=q.dtype)
    outs = []
    for t in range(T):
        kt = k[:, :, t]                     # [B, H, Dk]
        vt = v[:, :, t]                     # [B, H, Dv]
        S = S + mx.expand_dims(kt, -1) @ mx.expand_dims(vt, -2)
        o = (mx.expand_dims(q[:, :, t], -2) @ S)   # [B, H, 1, Dv]
        outs.append(o)
    return mx.concatenate(outs, axis=2)


def input_factory(size_label, seed):
    T = {"small": 16, "typical": 24, "large": 32}[size_label]
    kq, kk, kv = mx.random.split(mx.random.key(seed), 3)
    q = mx.random.normal((2, 2, T, 16), key=kq) * 0.25
    k = mx.random.normal((2, 2, T, 16), key=kk) * 0.25
    v = mx.random.normal((2, 2, T, 16), key=kv)
    return (q, k, v), {}
