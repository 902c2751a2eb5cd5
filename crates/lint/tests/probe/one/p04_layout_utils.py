"""Layout helpers for a UNet ported from torch (NCHW) to MLX (NHWC)."""
import numpy as np
import mlx.core as mx
import mlx.nn as nn


class ConvBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm = nn.GroupNorm(8, cout, pytorch_compatible=True)

    def __call__(self, x):
        # x arrives NCHW from the torch-ported data loader
        x = mx.transpose(x, (0, 2, 3, 1))  # NHWC for conv
        x = self.conv(x)
        x = mx.transpose(x, (0, 3, 1, 2))  # back to NCHW
        x = mx.transpose(x, (0, 2, 3, 1))  # NHWC again for GroupNorm
        x = self.norm(x)
        return nn.silu(x)


def gram_matrix(feats):
    # feats: (B, C, N)
    ft = feats.swapaxes(1, 2)
    f = ft.swapaxes(1, 2)
    return (f @ ft) / feats.shape[-1]


def linear_no_bias(x, w):
    return x @ w.T.T


def merge_heads(o, B, L):
    o = o.transpose(0, 2, 1, 3)
    o = o.transpose(0, 2, 1, 3)
    return o.reshape(B, L, -1)


def normalize_batch(x: mx.array, mean: mx.array, std: mx.array) -> mx.array:
    x = mx.array(x)  # defensive copy
    return (x - mean) / std


def postprocess(y: mx.array) -> mx.array:
    out = mx.array(np.array(y))
    return mx.clip(out, 0.0, 1.0)


def count_classes(labels: mx.array, num_classes: int):
    counts = [0] * num_classes
    for i in range(labels.shape[0]):
        counts[labels[i].item()] += 1
    return counts
