"""A compiled mlx.nn activation applied to a weight, not to fn's argument, as recurrent_gemma's
RG-LRU does with `nn.softplus(self.recurrent_param)`: MLX's export cannot save that compiled
primitive, so fn is traced as the plain operations it runs."""
import mlx.core as mx
import mlx.nn as nn

W = mx.random.normal((64,), key=mx.random.key(1))


def fn(x):
    return x * nn.softplus(W) + nn.silu(x)


def input_factory(size_label, seed):
    n = {"small": 4, "typical": 64, "large": 256}[size_label]
    return (mx.random.normal((n, 64), key=mx.random.key(seed)),), {}
