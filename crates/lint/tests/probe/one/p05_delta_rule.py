"""Chunked (gated) delta rule, reference port of the torch naive implementation."""
import mlx.core as mx


def l2norm(x, eps=1e-6):
    # L2 normalisation (sum, not mean): NOT an RMSNorm
    return x * mx.rsqrt((x * x).sum(-1, keepdims=True) + eps)


def chunk_delta_rule(q, k, v, beta, chunk_size=64):
    B, H, T, D = q.shape
    q = l2norm(q) * D ** -0.5
    k = l2norm(k)
    v = v * beta[..., None]
    k_beta = k * beta[..., None]
    n = T // chunk_size
    q, k, v, k_beta = [t.reshape(B, H, n, chunk_size, -1) for t in (q, k, v, k_beta)]

    incl = mx.triu(mx.ones((chunk_size, chunk_size), dtype=mx.bool_), k=0)
    attn = -mx.where(incl, 0, k_beta @ k.swapaxes(-1, -2))
    for i in range(1, chunk_size):
        attn[..., i, :i] = attn[..., i, :i] + (attn[..., i, :, None] * attn[..., :, :i]).sum(-2)
    attn = attn + mx.eye(chunk_size)
    w = attn @ k_beta
    u = attn @ v

    S = mx.zeros((B, H, D, v.shape[-1]))
    strict = mx.triu(mx.ones((chunk_size, chunk_size), dtype=mx.bool_), k=1)
    outs = []
    for i in range(n):
        q_i, k_i = q[:, :, i], k[:, :, i]
        a = mx.where(strict, 0, q_i @ k_i.swapaxes(-1, -2))
        u_i = u[:, :, i] - w[:, :, i] @ S
        outs.append(q_i @ S + a @ u_i)
        S = S + k_i.swapaxes(-1, -2) @ u_i
    return mx.stack(outs, axis=2).reshape(B, H, T, -1)


def invert_unit_lower(A):
    """Rows of (I - A)^{-1} for strictly lower-triangular A, built one row at a time."""
    n = A.shape[-1]
    rows = [mx.zeros_like(A[..., 0, :])]
    for i in range(1, n):
        row = A[..., i, :]
        for j in range(i):
            row = row + A[..., i, j : j + 1] * rows[j]
        rows.append(row)
    return mx.stack(rows, axis=-2) + mx.eye(n)


def wy_transform(Kb, K):
    """Same forward substitution, written with += and mx.sum, in float64 'for accuracy'."""
    C = K.shape[-2]
    T = -mx.tril(Kb @ mx.swapaxes(K, -1, -2), k=-1).astype(mx.float64)
    for r in range(1, C):
        T[..., r, :r] += mx.sum(T[..., r, :, None] * T[..., :, :r], axis=-2)
    return (T + mx.eye(C)).astype(K.dtype)
