"""Softmax by hand in float32, up to 8192 x 8192 (the kernel benchmark)."""
from _kernels import softmax

fn, fast_fn, input_factory = softmax("float32")
