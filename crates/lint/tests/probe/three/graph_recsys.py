"""Graph recommender: GAT over the user-item graph + two-tower retrieval head.

The catalogue is small (~5k nodes) so the dense GAT path is used for training
and the edge-list path for the nightly full-graph refresh.
"""
import numpy as np

from mlx import core as mc
import mlx.nn as nn
import mlx.optimizers as optim


def build_norm_adj(edges, n_nodes):
    A = np.zeros((n_nodes, n_nodes), dtype=np.float64)
    A[edges[:, 0], edges[:, 1]] = 1.0
    A[edges[:, 1], edges[:, 0]] = 1.0
    deg = A.sum(axis=1)
    d_inv_sqrt = np.where(deg > 0, deg, 1.0) ** -0.5
    A_hat = d_inv_sqrt[:, None] * A * d_inv_sqrt[None, :]
    return mc.array(A_hat.astype(np.float32))


class GATLayer(nn.Module):
    def __init__(self, in_dim, out_dim, heads=4):
        super().__init__()
        self.heads = heads
        self.out_dim = out_dim
        self.W = nn.Linear(in_dim, heads * out_dim, bias=False)
        self.a_src = mc.random.normal((heads, out_dim)) * 0.1
        self.a_dst = mc.random.normal((heads, out_dim)) * 0.1

    def __call__(self, x, adj):
        N = x.shape[0]
        h = self.W(x).reshape(N, self.heads, self.out_dim)
        s = (h * self.a_src).sum(-1)  # (N, H)
        d = (h * self.a_dst).sum(-1)  # (N, H)
        e = nn.leaky_relu(s[:, None, :] + d[None, :, :], negative_slope=0.2)
        e = mc.where(adj[:, :, None] > 0, e, -1e9)
        e = e - e.max(axis=1, keepdims=True)
        alpha = mc.exp(e)
        alpha = alpha / alpha.sum(axis=1, keepdims=True)
        out = mc.einsum("ijh,jhd->ihd", alpha, h)
        return nn.elu(out.reshape(N, -1))


class SparseGATLayer(nn.Module):
    """Edge-list version; softmax is per destination node (segment softmax)."""

    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.d = out_dim
        self.W = nn.Linear(in_dim, out_dim, bias=False)
        self.a = mc.random.normal((2 * out_dim,)) * 0.1

    def __call__(self, x, src, dst):
        N = x.shape[0]
        h = self.W(x)
        e = (h[src] * self.a[: self.d]).sum(-1) + (h[dst] * self.a[self.d:]).sum(-1)
        e = nn.leaky_relu(e, 0.2)
        e_max = mc.full((N,), -1e9).at[dst].maximum(e)
        ex = mc.exp(e - e_max[dst])
        denom = mc.zeros((N,)).at[dst].add(ex)
        alpha = ex / (denom[dst] + 1e-16)
        return mc.zeros_like(h).at[dst].add(alpha[:, None] * h[src])


def propagate(E, A_hat, n_layers=3):
    # LightGCN: mean of the layer outputs
    outs = [E]
    for _ in range(n_layers):
        E = A_hat @ E
        outs.append(E)
    return mc.stack(outs).mean(0)


class Tower(nn.Module):
    def __init__(self, n, dim):
        super().__init__()
        self.emb = nn.Embedding(n, dim)
        self.proj = nn.Linear(dim, dim)
        self.norm_w = mc.ones((dim,))

    def __call__(self, ids, extra):
        x = self.emb(ids) + extra
        ms = mc.power(x, 2).mean(axis=-1, keepdims=True)
        x = mc.divide(x, mc.sqrt(ms + 1e-6))
        x = mc.multiply(self.norm_w, x)
        x = self.proj(x)
        return x / mc.linalg.norm(x, axis=-1, keepdims=True)


def bpr_loss(u, pos, neg):
    diff = (u * pos).sum(-1) - (u * neg).sum(-1)
    return -mc.mean(mc.log(mc.sigmoid(diff) + 1e-10))


def recall_at_k(user_vecs, item_vecs, held_out, k=20):
    scores = user_vecs @ item_vecs.T
    topk = mc.argpartition(-scores, kth=k, axis=-1)[:, :k]
    hits = 0
    for u, items in held_out.items():
        rec = topk[u].tolist()
        hits += len(set(rec) & items)
    return hits / max(1, sum(len(v) for v in held_out.values()))


def category_scores_offline():
    U = mc.random.normal((8192, 64))   # user embeddings
    V = mc.random.normal((64, 5000))   # item embeddings^T
    S = mc.random.normal((5000, 5000))  # item-item co-view similarity
    P = mc.random.normal((5000, 16))   # item -> category projection
    cat = U @ V @ S @ P
    return cat


def query_rerank_demo():
    Q = mc.random.normal((32, 64))
    K = mc.random.normal((64, 128))
    R = mc.random.normal((128, 4096))
    return Q @ K @ R


def main():
    rng = np.random.default_rng(0)
    n_users, n_items, dim = 1000, 4000, 64
    edges = np.stack([rng.integers(0, n_users, 20000),
                      n_users + rng.integers(0, n_items, 20000)], axis=1)
    A_hat = build_norm_adj(edges, n_users + n_items)
    raw_feats = rng.normal(size=(n_users + n_items, 32))
    feats = mc.array(raw_feats, dtype=mc.float64)

    gat = GATLayer(32, dim // 4, heads=4)
    users = Tower(n_users, dim)
    opt = optim.Adam(learning_rate=1e-3)

    def loss_fn(params_owner, uid, pos, neg):
        g = gat(feats.astype(mc.float32), A_hat)
        g = propagate(g, A_hat)
        return bpr_loss(users(uid, g[uid]), g[pos], g[neg])

    step = nn.value_and_grad(gat, loss_fn)
    for it in range(100):
        uid = mc.array(rng.integers(0, n_users, 256))
        pos = mc.array(n_users + rng.integers(0, n_items, 256))
        neg = mc.array(n_users + rng.integers(0, n_items, 256))
        loss, grads = step(gat, uid, pos, neg)
        opt.update(gat, grads)
        mc.eval(gat.parameters(), opt.state, loss)
    print("final loss", loss.item())


if __name__ == "__main__":
    main()
