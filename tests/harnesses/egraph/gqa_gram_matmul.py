"""GQA key gram with repeat and an explicit matmul (no einsum): 8 key heads read by 32."""
import mlx.core as mx

SIZES = {"small": (1, 2, 32, 32), "typical": (1, 8, 512, 64), "large": (2, 8, 512, 64)}


def fn(k):
    kr = mx.repeat(k, 4, axis=1)
    return mx.matmul(kr, mx.transpose(kr, (0, 1, 3, 2)))


def input_factory(size_label, seed):
    return (mx.random.normal(SIZES[size_label], key=mx.random.key(seed)),), {}
