"""The naive chunked gated delta rule port (harness) by hand, as FlashQLA's optimized MLX
port does it: the key gram matrix and q.k at the key heads only (not over repeated k), the
unit lower-triangular solve by functional forward substitution instead of in-place row updates,
masks built once per chunk size, the whole forward compiled."""
import os

import mlx.core as mx

HARNESS = "tests/mutations/harnesses/chunked_gated_delta.py"

CHUNK = 16 if os.environ.get("SUPEROPT_SIZES") == "cpu" else 64
_MASKS = {}


def masks(c):
    """(strictly lower, lower with the diagonal, identity) for chunk size c, made once."""
    if c not in _MASKS:
        rows, cols = mx.arange(c)[:, None], mx.arange(c)[None, :]
        _MASKS[c] = (rows > cols, rows >= cols, mx.eye(c))
    return _MASKS[c]


def unit_lower_inverse(a, c):
    """(I + a)^-1 for strictly lower-triangular a over the last two axes, by forward
    substitution written functionally: row i of the inverse's strictly lower part is
    -a_i - sum_k a_ik (row k), the rows stacked as they are made. The sums are elementwise
    (as the naive port's in-place updates are), not a matmul: a GPU's float32 matmuls
    round to TF32, which the solve would amplify."""
    rows = [mx.zeros_like(a[..., 0, :])]
    for i in range(1, c):
        row = -a[..., i, :]
        above = mx.stack(rows, axis=-2)  # rows 0..i-1, zero from column i on
        rows.append(row + (row[..., :i, None] * above).sum(axis=-2))
    return mx.stack(rows, axis=-2) + masks(c)[2]


def state_update(last, gc, k):
    """Each position's keys, decayed to the chunk's end."""
    return k * mx.exp(last - gc)[..., None]


def forward(q, k, v, g, beta):
    b, hk, t, d = q.shape
    hv = v.shape[1]
    rep = hv // hk
    c = CHUNK
    strict, lower, _ = masks(c)

    def grouped(x):  # (b, hv, ...) -> (b, hk, rep, ...): value heads beside their key head
        return x.reshape(b, hk, rep, *x.shape[2:])

    state = mx.zeros((b, hk, rep, d, v.shape[-1]))
    outs = []
    for start in range(0, t, c):
        qc, kc = q[:, :, start : start + c], k[:, :, start : start + c]
        vc = grouped(v[:, :, start : start + c])
        bc = grouped(beta[:, :, start : start + c])
        gc = mx.cumsum(grouped(g[:, :, start : start + c]), axis=-1)
        gram = (kc @ mx.swapaxes(kc, -1, -2))[:, :, None]  # at the key heads, shared by the group
        qk = (qc @ mx.swapaxes(kc, -1, -2))[:, :, None]
        decay = mx.exp(mx.where(lower, gc[..., :, None] - gc[..., None, :], -mx.inf))
        a = mx.where(strict, bc[..., :, None] * gram * decay, 0.0)
        # The solve's products meet the state in the naive port's order ((T k) S, not
        # T (k S)): where the state grows large, the other order overflows elsewhere.
        t_inv = unit_lower_inverse(a, c)
        kd = t_inv @ ((bc * mx.exp(gc))[..., None] * kc[:, :, None])
        u = t_inv @ (bc[..., None] * vc) - kd @ state
        outs.append((mx.exp(gc)[..., None] * qc[:, :, None]) @ state + (qk * decay) @ u)
        last = gc[..., -1:]
        kt = mx.swapaxes(state_update(last, gc, kc[:, :, None]), -1, -2)
        state = state * mx.exp(last)[..., None] + kt @ u
    return mx.concatenate(outs, axis=-2).reshape(b, hv, t, -1)


optimized = mx.compile(forward)
