import time

import numpy as np
import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim


def loss_fn(model, x, y):
    return nn.losses.cross_entropy(model(x), y, reduction="mean")


def evaluate(model, batches):
    total_loss = 0.0
    correct = 0
    count = 0
    for x, y in batches:
        logits = model(x)
        loss = nn.losses.cross_entropy(logits, y, reduction="sum")
        total_loss += loss.item()
        preds = mx.argmax(logits, axis=-1)
        correct += (preds == y).sum().item()
        count += y.size
    return total_loss / count, correct / count


def train(model, train_batches, epochs=3, lr=3e-4, log_every=10):
    opt = optim.AdamW(learning_rate=lr)
    loss_and_grad = nn.value_and_grad(model, loss_fn)
    history = []
    for epoch in range(epochs):
        tic = time.perf_counter()
        for step, (x, y) in enumerate(train_batches):
            loss, grads = loss_and_grad(model, x, y)
            opt.update(model, grads)
            mx.eval(model.parameters(), opt.state)
            history.append(float(loss.item()))
            if step % log_every == 0:
                print(f"epoch {epoch} step {step} loss {history[-1]:.3f} "
                      f"({time.perf_counter() - tic:.1f}s)")
    return history


def train_until(model, batch, target=0.1, max_steps=1000):
    opt = optim.SGD(learning_rate=1e-2)
    loss_and_grad = nn.value_and_grad(model, loss_fn)
    x, y = batch
    loss = mx.array(float("inf"))
    step = 0
    while loss.item() > target and step < max_steps:
        loss, grads = loss_and_grad(model, x, y)
        opt.update(model, grads)
        mx.eval(model.parameters(), opt.state)
        step += 1
    return step


def per_token_logprobs(logits, targets):
    lp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    results = []
    for row in range(lp.shape[0]):
        results.append(lp[row, targets[row]].tolist())
    return results


def high_precision_mse(preds, labels):
    p = preds.astype(mx.float64)
    t = labels.astype(mx.float64)
    return mx.mean((p - t) ** 2)


def make_schedule(n):
    return mx.array(np.linspace(0.0, 1.0, n), dtype=mx.float64)


def accumulate_grads(grad_list):
    acc = None
    for g in grad_list:
        g = g.astype(mx.float64)
        acc = g if acc is None else acc + g
    return acc
