"""Mamba / S6 selective scan, sequential reference form. x, dt [B, T, D]; A [D, N];
Bm, Cm [B, T, N]; hidden state h [B, D, N]; y_t = sum_n h * C_t."""
import mlx.core as mx


def fn(x, dt, A, Bm, Cm, Dskip):
    b, L, d = x.shape
    n = A.shape[1]
    h = mx.zeros((b, d, n))
    ys = []
    for t in range(L):
        dt_t = dt[:, t]                                  # [B, D]
        dA = mx.exp(dt_t[:, :, None] * A)                # [B, D, N]
        dBx = dt_t[:, :, None] * Bm[:, t][:, None, :] * x[:, t][:, :, None]
        h = dA * h + dBx
        y = mx.sum(h * Cm[:, t][:, None, :], axis=-1)    # [B, D]
        ys.append(y + Dskip * x[:, t])
    return mx.stack(ys, axis=1)


def input_factory(size_label, seed):
    L = {"small": 16, "typical": 24, "large": 32}[size_label]
    b, d, n = 2, 32, 16
    ks = mx.random.split(mx.random.key(seed), 6)
    x = mx.random.normal((b, L, d), key=ks[0])
    dt = mx.log(1 + mx.exp(mx.random.normal((b, L, d), key=ks[1]) - 2.0))   # softplus
    A = -mx.exp(mx.random.normal((d, n), key=ks[2]) * 0.5)
    Bm = mx.random.normal((b, L, n), key=ks[3])
    Cm = mx.random.normal((b, L, n), key=ks[4])
    Dskip = mx.random.normal((d,), key=ks[5])
    return (x, dt, A, Bm, Cm, Dskip), {}
