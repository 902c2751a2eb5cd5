"""RWKV-5-ish time/channel mixing with every 4th layer swapped for GQA attention
(Jamba-style hybrid). Written for readability first.
"""
import mlx.core as mx
import mlx.nn as nn


class RMSNorm(nn.Module):
    def __init__(self, dims, eps=1e-6):
        super().__init__()
        self.weight = mx.ones((dims,))
        self.variance_epsilon = eps

    def __call__(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.astype(mx.float32)
        variance = (hidden_states ** 2).mean(-1, keepdims=True)
        hidden_states = hidden_states * (variance + self.variance_epsilon) ** -0.5
        return self.weight * hidden_states.astype(input_dtype)


def token_shift(x):
    return mx.concatenate([mx.zeros_like(x[:, :1]), x[:, :-1]], axis=1)


class TimeMix(nn.Module):
    def __init__(self, d, n_head):
        super().__init__()
        self.n_head = n_head
        self.hs = d // n_head
        self.mix_k = mx.full((d,), 0.5)
        self.mix_v = mx.full((d,), 0.5)
        self.mix_r = mx.full((d,), 0.5)
        self.mix_g = mx.full((d,), 0.5)
        self.time_decay = mx.zeros((n_head, self.hs))
        self.time_first = mx.zeros((n_head, self.hs))
        self.key = nn.Linear(d, d, bias=False)
        self.value = nn.Linear(d, d, bias=False)
        self.receptance = nn.Linear(d, d, bias=False)
        self.gate = nn.Linear(d, d, bias=False)
        self.output = nn.Linear(d, d, bias=False)
        self.ln_x_w = mx.ones((d,))
        self.ln_x_b = mx.zeros((d,))

    def group_norm(self, x):
        B, T, C = x.shape
        x = x.reshape(B, T, self.n_head, self.hs)
        mu = x.mean(axis=-1, keepdims=True)
        var = x.var(axis=-1, keepdims=True)
        x = (x - mu) / mx.sqrt(var + 64e-5)
        x = x.reshape(B, T, C)
        return x * self.ln_x_w + self.ln_x_b

    def __call__(self, x, state=None):
        B, T, C = x.shape
        H, S = self.n_head, self.hs
        xx = token_shift(x)
        xk = x * self.mix_k + xx * (1 - self.mix_k)
        xv = x * self.mix_v + xx * (1 - self.mix_v)
        xr = x * self.mix_r + xx * (1 - self.mix_r)
        xg = x * self.mix_g + xx * (1 - self.mix_g)

        r = self.receptance(xr).reshape(B, T, H, S)
        k = self.key(xk).reshape(B, T, H, S)
        v = self.value(xv).reshape(B, T, H, S)
        g = self.gate(xg)
        g = g * mx.sigmoid(g)

        w = mx.exp(-mx.exp(self.time_decay.astype(mx.float64))).astype(mx.float32)
        u = self.time_first

        if state is None:
            state = mx.zeros((B, H, S, S))
        outs = []
        for t in range(T):
            kt = k[:, t, :, :, None]  # (B,H,S,1)
            vt = v[:, t, :, None, :]  # (B,H,1,S)
            at = kt @ vt              # (B,H,S,S)
            rt = r[:, t, :, None, :]  # (B,H,1,S)
            outs.append((rt @ (u[..., None] * at + state)).squeeze(2))
            state = at + w[..., None] * state
        out = mx.stack(outs, axis=1).reshape(B, T, C)
        out = self.group_norm(out)
        return self.output(out * g), state


class ChannelMix(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.mix_k = mx.full((d,), 0.5)
        self.mix_r = mx.full((d,), 0.5)
        self.key = nn.Linear(d, hidden, bias=False)
        self.value = nn.Linear(hidden, d, bias=False)
        self.receptance = nn.Linear(d, d, bias=False)

    def __call__(self, x):
        xx = token_shift(x)
        xk = x * self.mix_k + xx * (1 - self.mix_k)
        xr = x * self.mix_r + xx * (1 - self.mix_r)
        k = mx.square(nn.relu(self.key(xk)))
        return mx.sigmoid(self.receptance(xr)) * self.value(k)


class HybridAttention(nn.Module):
    def __init__(self, d, n_heads, n_kv_heads):
        super().__init__()
        self.n_heads = n_heads
        self.n_kv = n_kv_heads
        self.head_dim = d // n_heads
        self.q_proj = nn.Linear(d, n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(n_heads * self.head_dim, d, bias=False)
        self.fc = nn.Linear(d, 4 * d)
        self.fc_out = nn.Linear(4 * d, d)

    def __call__(self, x):
        B, L, _ = x.shape
        q = self.q_proj(x).reshape(B, L, self.n_heads, -1).transpose(0, 2, 1, 3)
        k = self.k_proj(x).reshape(B, L, self.n_kv, -1).transpose(0, 2, 1, 3)
        v = self.v_proj(x).reshape(B, L, self.n_kv, -1).transpose(0, 2, 1, 3)
        n_rep = self.n_heads // self.n_kv
        k = mx.repeat(k, n_rep, axis=1)
        v = mx.repeat(v, n_rep, axis=1)
        mask = mx.triu(mx.full((L, L), -mx.inf), k=1)
        att = (q @ k.swapaxes(-1, -2)) * self.head_dim ** -0.5
        att = mx.softmax(att + mask, axis=-1)
        y = att @ v
        y = y.transpose(0, 2, 1, 3).reshape(B, L, -1)
        y = self.o_proj(y)
        h = self.fc(x + y)
        h = mx.sigmoid(1.702 * h) * h
        return y + self.fc_out(h)


class HybridLM(nn.Module):
    def __init__(self, vocab=65536, d=1024, n_layers=24, n_head=16, n_kv=4):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.norms = [RMSNorm(d) for _ in range(2 * n_layers)]
        self.mixers = []
        self.ffns = []
        for i in range(n_layers):
            if i % 4 == 3:
                self.mixers.append(HybridAttention(d, n_head, n_kv))
            else:
                self.mixers.append(TimeMix(d, n_head))
            self.ffns.append(ChannelMix(d, int(3.5 * d)))
        self.norm_out = RMSNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def __call__(self, tokens):
        x = self.emb(tokens)
        for i, (mixer, ffn) in enumerate(zip(self.mixers, self.ffns)):
            h = self.norms[2 * i](x)
            if isinstance(mixer, TimeMix):
                h, _ = mixer(h)
            else:
                h = mixer(h)
            x = x + h
            x = x + ffn(self.norms[2 * i + 1](x))
        return self.head(self.norm_out(x))


if __name__ == "__main__":
    lm = HybridLM(vocab=512, d=128, n_layers=4, n_head=4, n_kv=2)
    logits = lm(mx.random.randint(0, 512, (1, 32)))
    mx.eval(logits)
    print(logits.shape)
