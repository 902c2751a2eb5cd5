"""Train a small ConvNet on MNIST-shaped data with MLX, evaluating every epoch.

usage: python clean_train_eval.py --epochs 5 --batch-size 128
"""
import argparse
import time
from functools import partial

import numpy as np
import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_map


class ConvNet(nn.Module):
    def __init__(self, n_classes=10, width=64):
        super().__init__()
        self.c1 = nn.Conv2d(1, width, 3, padding=1)
        self.c2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.c3 = nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1)
        self.norm = nn.LayerNorm(2 * width)
        self.head = nn.Sequential(nn.Linear(2 * width, 256), nn.GELU(), nn.Dropout(0.1),
                                  nn.Linear(256, n_classes))

    def __call__(self, x):
        x = nn.silu(self.c1(x))
        x = nn.silu(self.c2(x))
        x = nn.silu(self.c3(x))
        x = self.norm(x.mean(axis=(1, 2)))
        return self.head(x)


def loss_fn(model, x, y, class_w):
    logits = model(x)
    ce = nn.losses.cross_entropy(logits, y, label_smoothing=0.1, reduction="none")
    return mx.mean(ce * class_w[y])


def class_weights(labels_np, n_classes=10):
    counts = np.bincount(labels_np, minlength=n_classes).astype(np.float64)
    w = counts ** -0.5
    w = w / w.sum() * n_classes
    return mx.array(w.astype(np.float32))


def batches(X, Y, bs, shuffle=True):
    idx = np.random.permutation(len(X)) if shuffle else np.arange(len(X))
    for s in range(0, len(X), bs):
        j = idx[s: s + bs]
        yield mx.array(X[j]), mx.array(Y[j])


def train_epoch(model, opt, X, Y, bs, class_w):
    state = [model.state, opt.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(x, y):
        loss, grads = nn.value_and_grad(model, loss_fn)(model, x, y, class_w)
        grads, _ = optim.clip_grad_norm(grads, max_norm=1.0)
        opt.update(model, grads)
        return loss

    model.train()
    losses = []
    for x, y in batches(X, Y, bs):
        losses.append(step(x, y))
        mx.eval(state)
    return mx.mean(mx.stack(losses)).item()


def evaluate(model, X, Y, bs, temperature=1.0):
    model.eval()
    correct = mx.array(0)
    nll = mx.array(0.0)
    cm = mx.zeros((10, 10), dtype=mx.int32)
    for x, y in batches(X, Y, bs, shuffle=False):
        logits = model(x) / temperature
        probs = mx.softmax(logits, axis=-1)
        preds = mx.argmax(probs, axis=-1)
        correct = correct + mx.sum(preds == y)
        nll = nll + nn.losses.cross_entropy(logits, y, reduction="sum")
        cm = cm.at[y, preds].add(1)
        mx.eval(correct, nll, cm)
    n = len(X)
    acc = correct.item() / n
    cm_host = np.array(cm.tolist(), dtype=np.float64)
    per_class_recall = np.diag(cm_host) / np.maximum(cm_host.sum(axis=1), 1.0)
    return acc, nll.item() / n, per_class_recall


def ema_update(ema_params, params, decay=0.999):
    return tree_map(lambda e, p: decay * e + (1.0 - decay) * p, ema_params, params)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    X = rng.normal(size=(6000, 28, 28, 1)).astype(np.float32)
    Y = rng.integers(0, 10, size=6000).astype(np.int32)
    Xv, Yv = X[:1000], Y[:1000]
    class_w = class_weights(Y)

    model = ConvNet()
    mx.eval(model.parameters())
    sched = optim.cosine_decay(args.lr, args.epochs * (len(X) // args.batch_size))
    opt = optim.AdamW(learning_rate=sched, weight_decay=0.05)
    ema = tree_map(lambda p: p, model.parameters())

    history = []
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        tr_loss = train_epoch(model, opt, X, Y, args.batch_size, class_w)
        ema = ema_update(ema, model.parameters())
        mx.eval(ema)
        acc, nll, rec = evaluate(model, Xv, Yv, args.batch_size)
        history.append((tr_loss, acc, nll))
        print(f"epoch {epoch}: loss {tr_loss:.3f} val acc {acc:.3f} nll {nll:.3f} "
              f"worst class {rec.min():.2f} ({time.perf_counter() - t0:.1f}s)")
    best = max(range(len(history)), key=lambda i: history[i][1])
    print("best epoch", best, history[best])


if __name__ == "__main__":
    main()
