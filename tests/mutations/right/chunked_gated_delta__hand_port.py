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
    -a_i - a_i @ (the rows above it), the rows stacked as they are made."""
    rows = [mx.zeros_like(a[..., :1, :])]
    for i in range(1, c):
        row = -a[..., i : i + 1, :]
        rows.append(row + row[..., :i] @ mx.concatenate(rows, axis=-2)[..., :i, :])
    return mx.concatenate(rows, axis=-2) + masks(c)[2]


def state_update(last, gc, u):
    """Each position's new values, decayed to the chunk's end."""
    return mx.exp(last - gc)[..., None] * u


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
        # The decays scale q and k before they meet the state, as the naive port does: the
        # other order can overflow where the state is large and the decays tiny.
        kd = (bc * mx.exp(gc))[..., None] * kc[:, :, None]
        u = unit_lower_inverse(a, c) @ (bc[..., None] * vc - kd @ state)
        outs.append((mx.exp(gc)[..., None] * qc[:, :, None]) @ state + (qk * decay) @ u)
        last = gc[..., -1:]
        state = mx.exp(last)[..., None] * state + mx.swapaxes(kc, -1, -2)[:, :, None] @ state_update(last, gc, u)
    return mx.concatenate(outs, axis=-2).reshape(b, hv, t, -1)


optimized = mx.compile(forward)
