# %% [markdown]
# # tiny char-level GPT, MLX edition
# ported from my old pytorch notebook so it runs on the laptop GPU

# %%
import math
import time

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim

# %%
text = "to be, or not to be, that is the question: " * 400
chars = sorted(set(text))
vocab_size = len(chars)
stoi = {c: i for i, c in enumerate(chars)}
itos = {i: c for c, i in stoi.items()}
data = mx.array([stoi[c] for c in text], dtype=mx.int32)
n = int(0.9 * data.shape[0])
train_data, val_data = data[:n], data[n:]

block_size = 64
batch_size = 32
n_embd = 128
n_head = 4
n_layer = 4


# %%
def get_batch(split):
    d = train_data if split == "train" else val_data
    ix = mx.random.randint(0, d.shape[0] - block_size, (batch_size,))
    x = mx.stack([d[i: i + block_size] for i in ix.tolist()])
    y = mx.stack([d[i + 1: i + block_size + 1] for i in ix.tolist()])
    return x, y


# %%
gelu = lambda x: 0.5 * x * (1.0 + mx.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * mx.power(x, 3))))
layernorm = lambda x, g, b, eps=1e-5: g * (x - x.mean(-1, keepdims=True)) / mx.sqrt(x.var(-1, keepdims=True) + eps) + b

tril = mx.tril(mx.ones((block_size, block_size)))


def channel_dropout(x, p=0.1):
    # drop whole channels: put channels first, mask, put them back
    xt = mx.swapaxes(x, 1, 2)  # (B, C, T)
    keep = mx.random.bernoulli(1 - p, (xt.shape[0], xt.shape[1], 1))
    xt = xt * keep / (1 - p)
    return mx.swapaxes(xt, 1, 2)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1_g, self.ln1_b = mx.ones((n_embd,)), mx.zeros((n_embd,))
        self.ln2_g, self.ln2_b = mx.ones((n_embd,)), mx.zeros((n_embd,))
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.fc = nn.Linear(n_embd, 4 * n_embd)
        self.fc2 = nn.Linear(4 * n_embd, n_embd)

    def __call__(self, x):
        B, T, C = x.shape
        h = layernorm(x, self.ln1_g, self.ln1_b)
        q, k, v = mx.split(self.qkv(h), 3, axis=-1)
        q = q.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)
        k = k.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)
        v = v.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)
        wei = q @ k.transpose(0, 1, 3, 2) * (k.shape[-1] ** -0.5)
        wei = mx.where(tril[:T, :T] == 0, float("-inf"), wei)
        wei = mx.softmax(wei, axis=-1)
        out = (wei @ v).transpose(0, 2, 1, 3).reshape(B, T, C)
        x = x + self.proj(out)
        x = x + self.fc2(gelu(self.fc(layernorm(x, self.ln2_g, self.ln2_b))))
        return x


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.blocks = [Block() for _ in range(n_layer)]
        self.lnf_g, self.lnf_b = mx.ones((n_embd,)), mx.zeros((n_embd,))

    def __call__(self, idx, train=False):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(mx.arange(T))
        if train:
            x = channel_dropout(x)
        for blk in self.blocks:
            x = blk(x)
        x = layernorm(x, self.lnf_g, self.lnf_b)
        return x @ self.wte.weight.T


# %%
model = GPT()
mx.eval(model.parameters())
optimizer = optim.AdamW(learning_rate=3e-4)


def loss_fn(model, x, y):
    logits = model(x, train=True)
    return nn.losses.cross_entropy(logits.reshape(-1, vocab_size), y.reshape(-1)).mean()


loss_and_grad = nn.value_and_grad(model, loss_fn)

# %%
lossi = []
t0 = time.time()
for it in range(300):
    xb, yb = get_batch("train")
    loss, grads = loss_and_grad(model, xb, yb)
    optimizer.update(model, grads)
    mx.eval(model.parameters(), optimizer.state)
    lossi.append(loss.item())
    if it % 50 == 0:
        print(f"step {it}: {lossi[-1]:.4f}  ({time.time() - t0:.1f}s)")


# %%
def estimate_loss(eval_iters=20):
    out = {}
    for split in ["train", "val"]:
        losses = mx.zeros((eval_iters,))
        for k in range(eval_iters):
            X, Y = get_batch(split)
            losses[k] = loss_fn(model, X, Y)
        out[split] = losses.mean()
    means = mx.stack([out["train"], out["val"]]).tolist()
    return dict(zip(["train", "val"], means))


print(estimate_loss())

# %% try the exact gelu instead of the tanh one
gelu_exact = lambda x: x * 0.5 * (1.0 + mx.erf(x / math.sqrt(2.0)))
gelu = gelu_exact
print(estimate_loss())


# %%
def generate(idx, max_new_tokens, temperature=1.0):
    for _ in range(max_new_tokens):
        logits = model(idx[:, -block_size:])[:, -1, :] / temperature
        nxt = mx.random.categorical(logits)[:, None]
        idx = mx.concatenate([idx, nxt.astype(mx.int32)], axis=1)
    return idx


print("".join(itos[i] for i in generate(mx.zeros((1, 1), dtype=mx.int32), 200)[0].tolist()))
