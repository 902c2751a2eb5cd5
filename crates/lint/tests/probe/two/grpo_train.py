"""Minimal GRPO loop on a toy policy (arithmetic task), MLX port of our torch script."""
import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim


class RMSNorm(nn.Module):
    def __init__(self, dims, eps=1e-6):
        super().__init__()
        self.g = mx.ones((dims,))
        self.eps = eps

    def __call__(self, h):
        norm = mx.sqrt(mx.mean(mx.square(h), -1, keepdims=True) + self.eps)
        return self.g * (h / norm)


class Policy(nn.Module):
    def __init__(self, vocab=512, dim=256, heads=4, layers=4):
        super().__init__()
        self.heads = heads
        self.embed = nn.Embedding(vocab, dim)
        self.norms = [RMSNorm(dim) for _ in range(layers)]
        self.qkv = [nn.Linear(dim, 3 * dim, bias=False) for _ in range(layers)]
        self.ffn = [nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)) for _ in range(layers)]
        self.final = RMSNorm(dim)

    def logits(self, h):
        w_out = self.embed.weight.T.T
        return h @ w_out.T

    def __call__(self, tokens):
        x = self.embed(tokens)
        B, L, D = x.shape
        for norm, qkv, ffn in zip(self.norms, self.qkv, self.ffn):
            q, k, v = mx.split(qkv(norm(x)), 3, axis=-1)
            q, k, v = (t.reshape(B, L, self.heads, -1).transpose(0, 2, 1, 3) for t in (q, k, v))
            a = mx.fast.scaled_dot_product_attention(q, k, v, scale=(D // self.heads) ** -0.5, mask="causal")
            x = x + a.transpose(0, 2, 1, 3).reshape(B, L, D)
            x = x + ffn(x)
        return self.logits(self.final(x))


def token_logprobs(model, seqs):
    logits = model(seqs[:, :-1])
    probs = mx.exp(logits) / mx.sum(mx.exp(logits), axis=-1, keepdims=True)
    logp = mx.log(probs)
    return mx.take_along_axis(logp, seqs[:, 1:, None], axis=-1).squeeze(-1)


def sample(model, prompt, max_new, eos, temp=1.0):
    seq = prompt
    for _ in range(max_new):
        logits = model(seq)[:, -1]
        tok = mx.random.categorical(logits / temp)
        seq = mx.concatenate([seq, tok[:, None]], axis=1)
        if (tok == eos).all().item():
            break
    return seq


def reward_fn(tokens, target):
    return 1.0 if target in tokens else 0.0


def grpo_loss(model, seqs, ref_logp, old_logp, adv, clip=0.2, beta=0.04):
    logp = token_logprobs(model, seqs)
    ratio = mx.exp(logp - old_logp)
    pg = -mx.minimum(ratio * adv[:, None], mx.clip(ratio, 1 - clip, 1 + clip) * adv[:, None])
    kl = mx.exp(ref_logp - logp) - (ref_logp - logp) - 1
    return (pg + beta * kl).mean(), kl.mean()


def train(model, ref_model, prompts, targets, steps=200, G=8):
    opt = optim.Adam(learning_rate=1e-5)
    loss_and_grad = nn.value_and_grad(model, grpo_loss)
    running = 0.0
    for step in range(steps):
        prompt = mx.repeat(prompts[step % len(prompts)][None], G, axis=0)
        seqs = sample(model, prompt, max_new=32, eos=2)
        rewards = []
        for g in range(G):
            toks = seqs[g].tolist()
            rewards.append(reward_fn(toks, targets[step % len(targets)]))
        rewards = mx.array(rewards, dtype=mx.float64)
        adv = (rewards - rewards.mean()) / (mx.std(rewards) + 1e-4)
        adv = adv.astype(mx.float32)
        old_logp = mx.stop_gradient(token_logprobs(model, seqs))
        ref_logp = mx.stop_gradient(token_logprobs(ref_model, seqs))
        (loss, kl), grads = loss_and_grad(model, seqs, ref_logp, old_logp, adv)
        opt.update(model, grads)
        mx.eval(model.parameters(), opt.state)
        running += loss.item()
        if step % 10 == 0:
            print(f"step {step} loss {running / (step + 1):.4f} kl {kl.item():.4f}")


def bench_projections():
    W_a = mx.random.normal((4096, 4096))
    W_b = mx.random.normal((4096, 4096))
    x = mx.random.normal((4096, 8))
    y = W_a @ W_b @ x

    lora_A = mx.random.normal((4096, 16))
    lora_B = mx.random.normal((16, 4096))
    h = mx.random.normal((8, 4096))
    delta = h @ (lora_A @ lora_B)
    mx.eval(y, delta)
    return y, delta


if __name__ == "__main__":
    policy, ref = Policy(), Policy()
    ref.freeze()
    ps = [mx.array([1, 5, 7, 3]), mx.array([1, 9, 9, 3])]
    train(policy, ref, ps, targets=[12, 18])
    bench_projections()
