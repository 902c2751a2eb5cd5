"""SwiGLU's activation silu(a) * b by hand in float32, up to 8192 x 8192 (the kernel benchmark)."""
from _kernels import swiglu

fn, _, input_factory = swiglu("float32")
