"""Checks and times the solve kernels of a module printed by
`cargo run -p superopt-kernel --example solve -- cuda` on 4096 unit lower-triangular
64 x 64 systems (a chunked gated delta rule's: B 1, 32 heads, 128 chunks): the kernel's
largest error against float64 (numpy) next to the plain-MLX forms', and per call the
kernel and the plain-MLX forms (doubling products, compiled; in-place row updates, eager and
compiled; stacked rows, compiled), with the best plain form over the kernel.
Usage: python scripts/gpu-solve-check.py MODULE"""
import importlib.util
import os
import sys
import time

import mlx.core as mx
import numpy as np

C, SHAPE = 64, (1, 32, 128)
spec = importlib.util.spec_from_file_location("kernels", sys.argv[1])
kernels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kernels)
STRICT = mx.tril(mx.ones((C, C), dtype=mx.bool_), k=-1)


def in_place(a):
    attn = mx.where(STRICT, a, 0.0)
    for i in range(1, C):
        attn[..., i, :i] = attn[..., i, :i] + (attn[..., i, :i, None] * attn[..., :i, :i]).sum(-2)
    return attn + mx.eye(C)


def stacked(a):
    a = mx.where(STRICT, a, 0.0)
    rows = [mx.broadcast_to(mx.eye(C)[0], a.shape[:-1])]
    for i in range(1, C):
        row = mx.eye(C)[i] + mx.sum(a[..., i, :i, None] * mx.stack(rows, axis=-2), axis=-2)
        rows.append(mx.where(mx.arange(C) < i, row, mx.eye(C)[i]))
    return mx.stack(rows, axis=-2)


def doubling(a):
    a = mx.where(STRICT, a, 0.0)
    t, p = mx.eye(C) + a, a
    for _ in range((C - 1).bit_length() - 1):
        p = p @ p
        t = t + t @ p
    return t


def timed(f, x, reps=int(os.environ.get("REPS", 50))):
    for _ in range(3):
        mx.eval(f(x))
    t0 = time.perf_counter()
    for _ in range(reps):
        mx.eval(f(x))
    return (time.perf_counter() - t0) / reps * 1e6


def systems(dtype):
    """-beta k k^T * decay below the diagonal, as the gated delta rule makes them."""
    ks = mx.random.split(mx.random.key(0), 3)
    k = mx.random.normal(SHAPE + (C, 128), key=ks[0])
    k = k * mx.rsqrt((k * k).sum(-1, keepdims=True))
    beta = mx.sigmoid(mx.random.normal(SHAPE + (C,), key=ks[1]))
    g = mx.cumsum(-0.05 * mx.abs(mx.random.normal(SHAPE + (C,), key=ks[2])), axis=-1)
    decay = mx.exp(mx.where(STRICT, g[..., :, None] - g[..., None, :], -mx.inf))
    return (-(k * beta[..., None]) @ k.swapaxes(-1, -2) * decay).astype(dtype)


def main():
    print(f"{np.prod(SHAPE)} systems of {C} x {C}; device {mx.default_device()}", flush=True)
    for dname, kernel in kernels.KERNELS:
        a = systems(getattr(mx, dname))
        mx.eval(a)
        some = np.array(a[0, 0, :8].astype(mx.float32), dtype=np.float64)
        exact = np.linalg.inv(np.eye(C) - np.tril(some, -1))
        scale = np.abs(exact).max()
        # Quick to compile first: stacked rows compiled take minutes to compile on a fresh GPU.
        forms = {"kernel": kernel, "doubling+compile": mx.compile(doubling), "in_place": in_place,
                 "in_place+compile": mx.compile(in_place), "stacked+compile": mx.compile(stacked)}
        times = {}
        for name, f in forms.items():  # each line as it comes: a GPU compiles each form at first use
            start = time.perf_counter()
            y = np.array(f(a)[0, 0, :8].astype(mx.float32), dtype=np.float64)
            first = time.perf_counter() - start
            error = np.abs(y - exact).max() / scale
            times[name] = timed(f, a)
            print(f"{dname:9} {name:18} {times[name]:10.1f} us   error {error:.1e}   first call {first:.1f} s", flush=True)
            if name != "kernel":  # the best so far: a later form may not finish in time
                best = min((t, n) for n, t in times.items() if n != "kernel")
                print(f"{dname:9} kernel {best[0] / times['kernel']:.2f}x over the best plain form so far ({best[1]})",
                      flush=True)


main()
