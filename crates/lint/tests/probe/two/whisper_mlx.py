"""Whisper port (openai/whisper model.py -> MLX).

Kept the module layout of the PyTorch reference so that the checkpoint
converter can map state-dict keys one to one.
"""
import math
from typing import Optional

import mlx.core as mx
import mlx.nn as nn
import numpy as np

N_FFT = 400
HOP = 160


def log_mel_spectrogram(audio: np.ndarray, filters: np.ndarray) -> mx.array:
    # host side feature extraction, numpy is fine here
    audio = audio.astype(np.float64)
    window = np.hanning(N_FFT + 1)[:-1]
    frames = np.lib.stride_tricks.sliding_window_view(audio, N_FFT)[::HOP]
    spec = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2
    mel = spec @ filters.astype(np.float64).T
    log_spec = np.log10(np.clip(mel, 1e-10, None))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return mx.array(((log_spec + 4.0) / 4.0).astype(np.float32))


def sinusoids(length, channels, max_timescale=10000):
    """Returns sinusoids for positional embedding"""
    log_timescale_increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = mx.exp(-log_timescale_increment * mx.arange(channels // 2))
    scaled_time = mx.arange(length)[:, None] * inv_timescales[None, :]
    return mx.concatenate([mx.sin(scaled_time), mx.cos(scaled_time)], axis=1)


def gelu(x):
    return 0.5 * x * (1.0 + mx.erf(x / math.sqrt(2.0)))


class LayerNorm(nn.Module):
    def __init__(self, dims: int, eps: float = 1e-5):
        super().__init__()
        self.weight = mx.ones((dims,))
        self.bias = mx.zeros((dims,))
        self.eps = eps

    def __call__(self, x):
        mean = mx.mean(x, axis=-1, keepdims=True)
        var = mx.mean((x - mean) ** 2, axis=-1, keepdims=True)
        x = (x - mean) / mx.sqrt(var + self.eps)
        return x * self.weight + self.bias


class MultiHeadAttention(nn.Module):
    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.query = nn.Linear(n_state, n_state)
        self.key = nn.Linear(n_state, n_state, bias=False)
        self.value = nn.Linear(n_state, n_state)
        self.out = nn.Linear(n_state, n_state)

    def __call__(self, x, xa=None, mask=None, kv_cache=None):
        q = self.query(x)
        if xa is None:
            k = self.key(x)
            v = self.value(x)
            if kv_cache is not None:
                k = mx.concatenate([kv_cache[0], k], axis=1)
                v = mx.concatenate([kv_cache[1], v], axis=1)
        elif kv_cache is None:
            k = self.key(xa)
            v = self.value(xa)
        else:
            k, v = kv_cache
        wv = self.qkv_attention(q, k, v, mask)
        return self.out(wv), (k, v)

    def qkv_attention(self, q, k, v, mask=None):
        n_batch, n_ctx, n_state = q.shape
        scale = (n_state // self.n_head) ** -0.25
        q = q.reshape(*q.shape[:2], self.n_head, -1).transpose(0, 2, 1, 3) * scale
        k = k.reshape(*k.shape[:2], self.n_head, -1).transpose(0, 2, 3, 1) * scale
        v = v.reshape(*v.shape[:2], self.n_head, -1).transpose(0, 2, 1, 3)
        qk = q @ k
        if mask is not None:
            qk = qk + mask[:n_ctx, :n_ctx]
        w = mx.softmax(qk, axis=-1)
        out = (w @ v).transpose(0, 2, 1, 3)
        return out.reshape(n_batch, n_ctx, n_state)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int, cross_attention: bool = False):
        super().__init__()
        self.attn = MultiHeadAttention(n_state, n_head)
        self.attn_ln = LayerNorm(n_state)
        self.cross_attn = MultiHeadAttention(n_state, n_head) if cross_attention else None
        self.cross_attn_ln = LayerNorm(n_state) if cross_attention else None
        self.mlp1 = nn.Linear(n_state, 4 * n_state)
        self.mlp2 = nn.Linear(4 * n_state, n_state)
        self.mlp_ln = LayerNorm(n_state)

    def __call__(self, x, xa=None, mask=None, kv_cache=None):
        kv, cross_kv = kv_cache if kv_cache else (None, None)
        y, kv = self.attn(self.attn_ln(x), mask=mask, kv_cache=kv)
        x = x + y
        if self.cross_attn is not None:
            y, cross_kv = self.cross_attn(self.cross_attn_ln(x), xa, kv_cache=cross_kv)
            x = x + y
        x = x + self.mlp2(gelu(self.mlp1(self.mlp_ln(x))))
        return x, (kv, cross_kv)


class AudioEncoder(nn.Module):
    def __init__(self, n_mels, n_ctx, n_state, n_head, n_layer):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, n_state, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(n_state, n_state, kernel_size=3, stride=2, padding=1)
        self._positional_embedding = sinusoids(n_ctx, n_state)
        self.blocks = [ResidualAttentionBlock(n_state, n_head) for _ in range(n_layer)]
        self.ln_post = LayerNorm(n_state)

    def __call__(self, x):
        x = gelu(self.conv1(x))
        x = gelu(self.conv2(x))
        x = x + self._positional_embedding[: x.shape[1]]
        for block in self.blocks:
            x, _ = block(x)
        return self.ln_post(x)


class TextDecoder(nn.Module):
    def __init__(self, n_vocab, n_ctx, n_state, n_head, n_layer):
        super().__init__()
        self.token_embedding = nn.Embedding(n_vocab, n_state)
        self.positional_embedding = mx.zeros((n_ctx, n_state))
        self.blocks = [
            ResidualAttentionBlock(n_state, n_head, cross_attention=True) for _ in range(n_layer)
        ]
        self.ln = LayerNorm(n_state)

    def __call__(self, tokens, xa, kv_cache=None):
        offset = kv_cache[0][0][0].shape[1] if kv_cache else 0
        x = self.token_embedding(tokens)
        x = x + self.positional_embedding[offset : offset + tokens.shape[-1]]
        n = x.shape[1]
        mask = mx.triu(mx.full((n, n), -mx.inf), k=1)
        if kv_cache is None:
            kv_cache = [None] * len(self.blocks)
        for i, block in enumerate(self.blocks):
            x, kv_cache[i] = block(x, xa, mask=mask, kv_cache=kv_cache[i])
        x = self.ln(x)
        return x @ self.token_embedding.weight.T, kv_cache


def greedy_decode(encoder, decoder, mel, sot_sequence, eot, max_len=224):
    audio_features = encoder(mel[None])
    tokens = list(sot_sequence)
    kv_cache = None
    for _ in range(max_len):
        inp = mx.array([tokens]) if kv_cache is None else mx.array([tokens[-1:]])
        logits, kv_cache = decoder(inp, audio_features, kv_cache)
        next_token = mx.argmax(logits[0, -1]).item()
        if next_token == eot:
            break
        tokens.append(next_token)
    return tokens[len(sot_sequence):]
