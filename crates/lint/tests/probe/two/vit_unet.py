"""ViT-B/16 backbone + a diffusion UNet res/attn block, ported from timm / diffusers.

MLX convs are channels-last, so images are NHWC throughout.
"""
import math

import mlx.core as mx
import mlx.nn as nn
from mlx.core import sigmoid


def patchify(imgs, p):
    B, H, W, C = imgs.shape
    x = imgs.reshape(B, H // p, p, W // p, p, C)
    x = x.transpose(0, 1, 3, 2, 4, 5).reshape(B, (H // p) * (W // p), p * p * C)
    return x


class ViTAttention(nn.Module):
    def __init__(self, dim, heads=12):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def __call__(self, x):
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, D // self.heads)
        qkv = qkv.transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = mx.einsum("bhid,bhjd->bhij", q, k) * self.scale
        attn = mx.softmax(attn, axis=-1)
        out = mx.einsum("bhij,bhjd->bhid", attn, v)
        out = out.transpose(0, 2, 1, 3).reshape(B, N, D)
        return self.proj(out)


class ViTBlock(nn.Module):
    def __init__(self, dim, heads, mlp_ratio=4):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ViTAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, dim * mlp_ratio)
        self.fc2 = nn.Linear(dim * mlp_ratio, dim)

    def __call__(self, x):
        x = x + self.attn(self.norm1(x))
        h = self.fc1(self.norm2(x))
        h = h * 0.5 * (1.0 + mx.erf(h * 0.7071067811865476))
        return x + self.fc2(h)


class ViT(nn.Module):
    def __init__(self, img=224, patch=16, dim=768, depth=12, heads=12, n_classes=1000):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        n_tok = (img // patch) ** 2
        self.cls_token = mx.zeros((1, 1, dim))
        self.pos_embed = mx.random.normal((1, n_tok + 1, dim)) * 0.02
        self.blocks = [ViTBlock(dim, heads) for _ in range(depth)]
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, n_classes)

    def __call__(self, imgs):
        x = self.patch_embed(imgs)
        B = x.shape[0]
        x = x.reshape(B, -1, x.shape[-1])
        cls = mx.broadcast_to(self.cls_token, (B, 1, x.shape[-1]))
        x = mx.concatenate([cls, x], axis=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        return self.head(x[:, 0])


# ------------------------------------------------------------------ UNet


class ResBlock(nn.Module):
    def __init__(self, ch, temb_dim, groups=32):
        super().__init__()
        self.temb_dim = temb_dim
        self.norm1 = nn.GroupNorm(groups, ch, pytorch_compatible=True)
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.temb_proj = nn.Linear(temb_dim, ch)
        self.norm2 = nn.GroupNorm(groups, ch, pytorch_compatible=True)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def __call__(self, x, t):
        half = self.temb_dim // 2
        freqs = mx.exp(-math.log(10000.0) * mx.arange(half, dtype=mx.float32) / half)
        args = t[:, None].astype(mx.float32) * freqs[None]
        temb = mx.concatenate([mx.cos(args), mx.sin(args)], axis=-1)

        h = self.norm1(x)
        h = h * sigmoid(h)
        h = self.conv1(h)
        h = h + self.temb_proj(nn.silu(temb))[:, None, None, :]
        h = self.norm2(h)
        h = nn.silu(h)
        return x + self.conv2(h)


class SpatialSelfAttention(nn.Module):
    def __init__(self, ch, groups=32):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch, pytorch_compatible=True)
        self.q = nn.Linear(ch, ch)
        self.k = nn.Linear(ch, ch)
        self.v = nn.Linear(ch, ch)
        self.proj_out = nn.Linear(ch, ch)

    def __call__(self, x):
        B, H, W, C = x.shape
        h = self.norm(x).reshape(B, H * W, C)
        q, k, v = self.q(h), self.k(h), self.v(h)
        k_t = k.swapaxes(1, 2)
        scores = (q @ k_t) * (C ** -0.5)
        probs = mx.softmax(scores, axis=-1)
        out = probs @ v
        out = out.swapaxes(1, 2)
        out = out.swapaxes(1, 2).reshape(B, H, W, C)
        return x + self.proj_out(out)


class Upsample(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def __call__(self, x):
        x = mx.repeat(x, 2, axis=1)
        x = mx.repeat(x, 2, axis=2)
        return self.conv(x)


class MidBlock(nn.Module):
    def __init__(self, ch, temb_dim):
        super().__init__()
        self.res1 = ResBlock(ch, temb_dim)
        self.attn = SpatialSelfAttention(ch)
        self.res2 = ResBlock(ch, temb_dim)
        self.up = Upsample(ch)

    def __call__(self, x, t):
        x = self.res1(x, t)
        x = self.attn(x)
        x = self.res2(x, t)
        return self.up(x)
