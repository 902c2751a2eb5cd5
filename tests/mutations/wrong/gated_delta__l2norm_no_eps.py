"""Gated delta rule with the eps dropped from its l2norm: same on normal inputs, 0/0 = NaN on zero q/k where fn is finite."""
import mlx.core as mx

HARNESS = "tests/harnesses/zoo/gated_delta.py"

H, DK, DV = 2, 16, 16
C = 16  # chunk size
T = {"small": 32, "typical": 64, "large": 128}


def l2norm(x):
    return x * mx.rsqrt((x * x).sum(axis=-1, keepdims=True))


def optimized(q, k, v, g, beta):
    # q, k: (B, H, T, DK); v: (B, H, T, DV); g (log decay, <= 0), beta: (B, H, T)
    b, h, t, dk = k.shape
    q = l2norm(q) * dk**-0.5
    k = l2norm(k)
    strict_upper = mx.triu(mx.ones((C, C), dtype=mx.bool_), k=1)
    upper = mx.triu(mx.ones((C, C), dtype=mx.bool_), k=0)
    eye = mx.eye(C)
    state = mx.zeros((b, h, dk, v.shape[-1]))
    outs = []
    for start in range(0, t, C):
        qc = q[:, :, start : start + C]
        kc = k[:, :, start : start + C]
        vc = v[:, :, start : start + C]
        bc = beta[:, :, start : start + C]
        gc = mx.cumsum(g[:, :, start : start + C], axis=-1)
        decay = mx.exp(mx.tril(gc[..., :, None] - gc[..., None, :]))
        decay = mx.where(strict_upper, 0.0, decay)
        k_beta = kc * bc[..., None]
        v_beta = vc * bc[..., None]
        # attn = -(K_beta K^T * decay), strictly lower; then (I - attn)^-1 by forward substitution.
        attn = mx.where(upper, 0.0, -((k_beta @ kc.swapaxes(-1, -2)) * decay))
        for i in range(1, C):
            row = attn[..., i, :i]
            sub = attn[..., :i, :i]
            attn[..., i, :i] = row + (row[..., :, None] * sub).sum(axis=-2)
        attn = attn + eye
        u = attn @ v_beta
        w = attn @ (k_beta * mx.exp(gc)[..., None])
        # Inter-chunk: read the state, then write it back decayed.
        intra = mx.where(strict_upper, 0.0, (qc @ kc.swapaxes(-1, -2)) * decay)
        v_new = u - w @ state
        out = (qc * mx.exp(gc)[..., None]) @ state + intra @ v_new
        outs.append(out)
        g_last = gc[..., -1]
        k_decayed = kc * mx.exp(g_last[..., None] - gc)[..., None]
        state = state * mx.exp(g_last)[..., None, None] + k_decayed.swapaxes(-1, -2) @ v_new
    return mx.concatenate(outs, axis=2), state
