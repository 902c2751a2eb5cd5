"""Per-chunk gram matrices of keys repeated from 2 to 4 heads and pre-scaled per value head
(`k_beta @ k^T` of a chunked linear attention, as FlashQLA's port writes it)."""
import mlx.core as mx

T = {"small": 32, "typical": 64, "large": 128}
CHUNK = 16


def fn(k, beta):
    b, h, t, d = k.shape
    k = mx.repeat(k, 2, axis=1).reshape(b, 2 * h, t // CHUNK, CHUNK, d)
    beta = beta.reshape(b, 2 * h, t // CHUNK, CHUNK)
    return mx.einsum("bhncd,bhnsd->bhncs", k * beta[..., None], k)


def input_factory(size_label, seed):
    kk, kb = mx.random.split(mx.random.key(seed))
    t = T[size_label]
    return (mx.random.normal((1, 2, t, 16), key=kk), mx.random.uniform(shape=(1, 4, t), key=kb)), {}
