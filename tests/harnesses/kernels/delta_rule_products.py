"""Delta rule with matmuls: state [B, H, K, V]; k_t S and q_t S as vector-matrix products, the update an outer product."""
import mlx.core as mx

def fn(q, k, v, g, beta):
    b, h, t, dk = q.shape
    S = mx.zeros((b, h, dk, v.shape[-1]))
    outs = []
    for i in range(t):
        qi, ki, vi = q[:, :, i:i + 1], k[:, :, i:i + 1], v[:, :, i:i + 1]   # [B, H, 1, D]
        S = S * mx.exp(g[:, :, i])[:, :, None, None]
        pred = ki @ S                                                      # [B, H, 1, V]
        delta = (vi - pred) * beta[:, :, i][:, :, None, None]
        S = S + mx.swapaxes(ki, -1, -2) @ delta                            # [B, H, K, V]
        outs.append(qi @ S)
    return mx.concatenate(outs, axis=2)

def input_factory(size_label, seed):
    t = {"small": 16, "typical": 24, "large": 32}[size_label]
    ks = mx.random.split(mx.random.key(seed), 5)
    q = mx.random.normal((1, 4, t, 16), key=ks[0]) * 0.25
    k = mx.random.normal((1, 4, t, 16), key=ks[1]) * 0.25
    v = mx.random.normal((1, 4, t, 8), key=ks[2])
    g = -0.1 * mx.abs(mx.random.normal((1, 4, t), key=ks[3]))
    beta = mx.sigmoid(mx.random.normal((1, 4, t), key=ks[4]))
    return (q, k, v, g, beta), {}
