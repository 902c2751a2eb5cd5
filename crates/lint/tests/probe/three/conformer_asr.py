"""Conformer encoder + CTC head for ASR (Gulati et al., 2020).

Input: log-mel features (B, T, 80). Everything is channels-last.
"""
import math

import mlx.core as mlx
import mlx.nn as nn


def swish(x):
    return x * mlx.sigmoid(x)


class LayerNorm(nn.Module):
    def __init__(self, dims, eps=1e-5):
        super().__init__()
        self.gamma = mlx.ones((dims,))
        self.beta = mlx.zeros((dims,))
        self.eps = eps

    def __call__(self, x):
        mean = mlx.mean(x, axis=-1, keepdims=True)
        var = mlx.var(x, axis=-1, keepdims=True)
        x_hat = (x - mean) * mlx.rsqrt(var + self.eps)
        return self.gamma * x_hat + self.beta


class FeedForward(nn.Module):
    def __init__(self, d, mult=4, dropout=0.1):
        super().__init__()
        self.ln = LayerNorm(d)
        self.fc1 = nn.Linear(d, d * mult)
        self.fc2 = nn.Linear(d * mult, d)
        self.drop = nn.Dropout(dropout)

    def __call__(self, x):
        h = swish(self.fc1(self.ln(x)))
        return self.fc2(self.drop(h))


class ConvModule(nn.Module):
    def __init__(self, d, kernel_size=31):
        super().__init__()
        self.ln = LayerNorm(d)
        self.pw1 = nn.Conv1d(d, 2 * d, 1)
        self.dw = nn.Conv1d(d, d, kernel_size, padding=kernel_size // 2, groups=d)
        self.bn = nn.BatchNorm(d)
        self.pw2 = nn.Conv1d(d, d, 1)

    def __call__(self, x):
        h = self.pw1(self.ln(x))
        a, gate = mlx.split(h, 2, axis=-1)
        h = a * mlx.sigmoid(gate)
        h = self.dw(h)
        h = self.bn(h)
        h = h * mlx.sigmoid(h)
        return self.pw2(h)


class RelPosMHSA(nn.Module):
    """MHSA with Shaw-style clipped relative position keys."""

    def __init__(self, d, heads, max_rel=64):
        super().__init__()
        self.h = heads
        self.dk = d // heads
        self.max_rel = max_rel
        self.ln = LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.rel_k = nn.Embedding(2 * max_rel + 1, self.dk)

    def __call__(self, x, lengths=None):
        B, T, _ = x.shape
        x = self.ln(x)
        q, k, v = mlx.split(self.qkv(x), 3, axis=-1)
        q = q.reshape(B, T, self.h, self.dk).transpose(0, 2, 1, 3)
        k = k.reshape(B, T, self.h, self.dk).transpose(0, 2, 1, 3)
        v = v.reshape(B, T, self.h, self.dk).transpose(0, 2, 1, 3)

        idx = mlx.arange(T)
        rel = idx[None, :] - idx[:, None]
        rel = mlx.clip(rel, -self.max_rel, self.max_rel) + self.max_rel
        rk = self.rel_k(rel)  # (T, T, dk)

        scores = q @ k.transpose(0, 1, 3, 2)
        scores = scores + mlx.einsum("bhtd,tsd->bhts", q, rk)
        scores = scores / math.sqrt(self.dk)
        if lengths is not None:
            valid = mlx.arange(T)[None, :] < lengths[:, None]
            scores = mlx.where(valid[:, None, None, :], scores, -1e9)
        attn = mlx.softmax(scores, axis=-1)
        out = (attn @ v).transpose(0, 2, 1, 3).reshape(B, T, -1)
        return self.out(out)


class ConformerBlock(nn.Module):
    def __init__(self, d, heads, kernel_size=31):
        super().__init__()
        self.ff1 = FeedForward(d)
        self.mhsa = RelPosMHSA(d, heads)
        self.conv = ConvModule(d, kernel_size)
        self.ff2 = FeedForward(d)
        self.ln_out = LayerNorm(d)

    def __call__(self, x, lengths=None):
        x = x + 0.5 * self.ff1(x)
        x = x + self.mhsa(x, lengths)
        x = x + self.conv(x)
        x = x + 0.5 * self.ff2(x)
        return self.ln_out(x)


class ConformerCTC(nn.Module):
    def __init__(self, n_mels=80, d=256, heads=4, layers=12, vocab=128):
        super().__init__()
        self.sub1 = nn.Conv2d(1, d, 3, stride=2, padding=1)
        self.sub2 = nn.Conv2d(d, d, 3, stride=2, padding=1)
        self.sub_proj = nn.Linear(d * ((n_mels + 3) // 4), d)
        self.blocks = [ConformerBlock(d, heads) for _ in range(layers)]
        self.head = nn.Linear(d, vocab)

    def __call__(self, feats, lengths=None):
        x = feats[..., None]  # (B, T, F, 1)
        x = nn.relu(self.sub1(x))
        x = nn.relu(self.sub2(x))
        B, T, F, C = x.shape
        x = self.sub_proj(x.reshape(B, T, F * C))
        if lengths is not None:
            lengths = (lengths + 3) // 4
        for blk in self.blocks:
            x = blk(x, lengths)
        logits = self.head(x)
        return logits - mlx.logsumexp(logits, axis=-1, keepdims=True)


def ctc_greedy_decode(log_probs, blank=0):
    best = mlx.argmax(log_probs, axis=-1)  # (B, T)
    hyps = []
    for b in range(best.shape[0]):
        prev = blank
        seq = []
        for t in range(best.shape[1]):
            tok = best[b, t].item()
            if tok != prev and tok != blank:
                seq.append(tok)
            prev = tok
        hyps.append(seq)
    return hyps


if __name__ == "__main__":
    model = ConformerCTC(layers=2)
    feats = mlx.random.normal((2, 400, 80))
    lp = model(feats, lengths=mlx.array([400, 320]))
    print(ctc_greedy_decode(lp)[0][:20])
