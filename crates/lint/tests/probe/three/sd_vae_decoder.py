"""Decoder half of the SD-style KL-f8 autoencoder, channels-last.

Ported by hand from the diffusers PyTorch code; weights come from a converted
safetensors file via `Decoder.load_weights`.
"""
import math

import mlx.core as mx
import mlx.nn as nn


def nonlinearity(x):
    # swish, as in the original ldm code
    return x * mx.sigmoid(x)


class ResnetBlock(nn.Module):
    def __init__(self, in_channels, out_channels=None, groups=32):
        super().__init__()
        out_channels = out_channels or in_channels
        self.norm1 = nn.GroupNorm(groups, in_channels, pytorch_compatible=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_channels, pytorch_compatible=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Linear(in_channels, out_channels)

    def __call__(self, x):
        h = nonlinearity(self.norm1(x))
        h = self.conv1(h)
        h = self.norm2(h)
        h = h * mx.sigmoid(h)
        h = self.conv2(h)
        if "nin_shortcut" in self:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head spatial self attention from the VAE mid block."""

    def __init__(self, channels, groups=32):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, pytorch_compatible=True)
        self.q = nn.Linear(channels, channels)
        self.k = nn.Linear(channels, channels)
        self.v = nn.Linear(channels, channels)
        self.proj_out = nn.Linear(channels, channels)

    def __call__(self, x):
        B, H, W, C = x.shape
        h_ = self.norm(x)
        q = self.q(h_).reshape(B, H * W, C)
        k = self.k(h_).reshape(B, H * W, C)
        v = self.v(h_).reshape(B, H * W, C)

        w_ = mx.einsum("bic,bjc->bij", q, k)
        w_ = w_ * (int(C) ** (-0.5))
        w_ = mx.exp(w_ - mx.max(w_, axis=2, keepdims=True))
        w_ = w_ / mx.sum(w_, axis=2, keepdims=True)

        h_ = mx.einsum("bij,bjc->bic", w_, v)
        h_ = h_.reshape(B, H, W, C)
        return x + self.proj_out(h_)


class MidAttention(nn.Module):
    """Multi-head flavour used by the refiner VAE."""

    def __init__(self, channels, num_heads=4, groups=32):
        super().__init__()
        self.num_heads = num_heads
        self.scale = 1.0 / math.sqrt(channels // num_heads)
        self.norm = nn.GroupNorm(groups, channels, pytorch_compatible=True)
        self.to_qkv = nn.Linear(channels, 3 * channels)
        self.to_out = nn.Linear(channels, channels)

    def __call__(self, x):
        B, H, W, C = x.shape
        L = H * W
        qkv = self.to_qkv(self.norm(x).reshape(B, L, C))
        q, k, v = mx.split(qkv, 3, axis=-1)
        q = q.reshape(B, L, self.num_heads, -1).transpose(0, 2, 1, 3)
        k = k.reshape(B, L, self.num_heads, -1).transpose(0, 2, 1, 3)
        v = v.reshape(B, L, self.num_heads, -1).transpose(0, 2, 1, 3)
        o = mx.fast.scaled_dot_product_attention(q, k, v, scale=self.scale)
        o = mx.contiguous(o.transpose(0, 2, 1, 3)).reshape(B, H, W, C)
        return x + self.to_out(o)


class Upsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def __call__(self, x):
        # nearest-neighbour x2
        x = mx.repeat(x, 2, axis=1)
        x = mx.repeat(x, 2, axis=2)
        return self.conv(x)


class Decoder(nn.Module):
    def __init__(self, z_channels=4, ch=128, ch_mult=(1, 2, 4, 4), out_ch=3):
        super().__init__()
        block_in = ch * ch_mult[-1]
        self.scaling_factor = 0.18215
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, padding=1)
        self.mid_block_1 = ResnetBlock(block_in)
        self.mid_attn = AttnBlock(block_in)
        self.mid_block_2 = ResnetBlock(block_in)
        self.up = []
        for i in reversed(range(len(ch_mult))):
            block_out = ch * ch_mult[i]
            stage = [ResnetBlock(block_in, block_out), ResnetBlock(block_out)]
            block_in = block_out
            if i != 0:
                stage.append(Upsample(block_in))
            self.up.append(stage)
        self.norm_out = nn.GroupNorm(32, block_in, pytorch_compatible=True)
        self.conv_out = nn.Conv2d(block_in, out_ch, 3, padding=1)

    def __call__(self, z_nchw):
        # the sampler hands us torch layout; convert once in and once out
        z = z_nchw.transpose(0, 2, 3, 1)
        h = self.conv_in(z)
        h = self.mid_block_2(self.mid_attn(self.mid_block_1(h)))
        for stage in self.up:
            for layer in stage:
                h = layer(h)
        h = nonlinearity(self.norm_out(h))
        h = self.conv_out(h)
        return h.transpose(0, 3, 1, 2)

    def decode_latents(self, z):
        # z: (B, 4, h, w) straight from the scheduler
        z = z.transpose(0, 2, 3, 1)
        z = z * (1.0 / self.scaling_factor)
        z = z.transpose(0, 3, 1, 2)
        img = self(z)
        return mx.clip(img / 2 + 0.5, 0.0, 1.0)


def sample_posterior(mean, logvar, key=None):
    # DiagonalGaussianDistribution.sample
    logvar = mx.clip(logvar, -30.0, 20.0)
    std = mx.exp(0.5 * logvar)
    noise = mx.random.normal(mean.shape, key=key)
    return mean + std * noise


def kl_term(mean, logvar):
    var = mx.exp(logvar)
    return 0.5 * mx.sum(mean ** 2 + var - 1.0 - logvar, axis=(1, 2, 3))


if __name__ == "__main__":
    dec = Decoder()
    mx.eval(dec.parameters())
    latents = mx.random.normal((1, 4, 32, 32))
    img = dec.decode_latents(latents)
    mx.eval(img)
    print(img.shape)
