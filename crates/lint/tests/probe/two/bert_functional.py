"""Functional BERT-base sequence classifier.

Weights come straight from the HF state dict (numpy .npz) so everything is
a dict of arrays, no nn.Module.
"""
import mlx.core
import mlx.nn
import mlx.optimizers
import numpy as np


def load_params(path):
    raw = np.load(path)
    return {k: mlx.core.array(v) for k, v in raw.items()}


def layer_norm(x, gamma, beta, eps=1e-12):
    u = x.mean(-1, keepdims=True)
    s = mlx.core.var(x, axis=-1, keepdims=True)
    return gamma * (x - u) * mlx.core.rsqrt(s + eps) + beta


def quick_gelu(x):
    return x * mlx.core.sigmoid(1.702 * x)


def softmax(x, axis=-1):
    x_max = mlx.core.max(x, axis=axis, keepdims=True)
    ex = mlx.core.exp(x - x_max)
    return ex / mlx.core.sum(ex, axis=axis, keepdims=True)


def linear(x, p, name):
    return x @ p[name + ".weight"].T + p[name + ".bias"]


def self_attention(h, p, prefix, n_heads, ext_mask):
    B, L, D = h.shape
    hd = D // n_heads

    def heads(name):
        y = linear(h, p, f"{prefix}.self.{name}")
        return y.reshape(B, L, n_heads, hd).transpose(0, 2, 1, 3)

    q, k, v = heads("query"), heads("key"), heads("value")
    att = (q @ k.swapaxes(-1, -2)) / mlx.core.sqrt(mlx.core.array(hd, dtype=mlx.core.float32))
    att = att + ext_mask
    att = softmax(att, axis=-1)
    ctx = att @ v
    ctx = ctx.transpose(0, 2, 1, 3).reshape(B, L, D)
    out = linear(ctx, p, f"{prefix}.output.dense")
    return layer_norm(out + h, p[f"{prefix}.output.LayerNorm.weight"], p[f"{prefix}.output.LayerNorm.bias"])


def encoder_layer(h, p, i, n_heads, ext_mask):
    pre = f"bert.encoder.layer.{i}"
    h = self_attention(h, p, pre + ".attention", n_heads, ext_mask)
    inter = quick_gelu(linear(h, p, pre + ".intermediate.dense"))
    out = linear(inter, p, pre + ".output.dense")
    return layer_norm(out + h, p[pre + ".output.LayerNorm.weight"], p[pre + ".output.LayerNorm.bias"])


def bert_classify(p, input_ids, attn_mask, n_layers=12, n_heads=12):
    B, L = input_ids.shape
    pos = mlx.core.arange(L)[None, :]
    emb = (
        p["bert.embeddings.word_embeddings.weight"][input_ids]
        + p["bert.embeddings.position_embeddings.weight"][pos]
        + p["bert.embeddings.token_type_embeddings.weight"][0]
    )
    h = layer_norm(emb, p["bert.embeddings.LayerNorm.weight"], p["bert.embeddings.LayerNorm.bias"])
    ext_mask = (1.0 - attn_mask[:, None, None, :].astype(mlx.core.float32)) * -10000.0
    for i in range(n_layers):
        h = encoder_layer(h, p, i, n_heads, ext_mask)
    pooled = mlx.core.tanh(linear(h[:, 0], p, "bert.pooler.dense"))
    return linear(pooled, p, "classifier")


def predict_proba(p, input_ids, attn_mask):
    logits = bert_classify(p, input_ids, attn_mask)
    # extra precision for calibration metrics
    return mlx.core.softmax(logits.astype(mlx.core.float64), axis=-1)


def evaluate(p, batches):
    correct = 0
    total = 0
    for ids, mask, labels in batches:
        logits = bert_classify(p, ids, mask)
        preds = mlx.core.argmax(logits, axis=-1)
        correct += (preds == labels).sum().item()
        total += labels.size
    return correct / total


def evaluate_lazy(p, batches):
    correct = mlx.core.array(0)
    total = 0
    for ids, mask, labels in batches:
        preds = mlx.core.argmax(bert_classify(p, ids, mask), axis=-1)
        correct = correct + (preds == labels).sum()
        total += labels.size
    return correct.item() / total


def finetune(p, batches, lr=2e-5):
    opt = mlx.optimizers.AdamW(learning_rate=lr)

    def loss_fn(params, ids, mask, labels):
        logits = bert_classify(params, ids, mask)
        return mlx.nn.losses.cross_entropy(logits, labels, reduction="mean")

    step = mlx.core.value_and_grad(loss_fn)
    losses = []
    for ids, mask, labels in batches:
        loss, grads = step(p, ids, mask, labels)
        p = opt.apply_gradients(grads, p)
        mlx.core.eval(p, opt.state)
        losses.append(loss)
    mean_loss = mlx.core.stack(losses).mean().item()
    return p, mean_loss
