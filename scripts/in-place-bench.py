"""Times one decode step's cache write three ways, on MLX's default device: as mlx-lm writes it
(`keys[...] = v` on the caller's buffer), as superopt's rebuilt programs wrote it before (a copy of
the buffer, then the update) and as they write it now (`_assign`: in place, as fn did); each step
evaluated before the next, then queued before the last is read (as mlx_lm.generate decodes).
Usage: python scripts/in-place-bench.py [MB]"""
import sys
import time

import mlx.core as mx

MB = int(sys.argv[1]) if len(sys.argv) > 1 else 256
B, D = 8, 256
S = MB * 2**20 // (B * D * 4)


def as_mlx_lm(x, keys):
    keys[:, 7:8, :] = mx.tanh(x)
    return mx.sum(keys[:, :8, :], axis=1), keys


def copied(x, keys):
    out = keys.reshape(keys.shape)
    out[(slice(0, B, 1), slice(7, 8, 1), slice(0, D, 1))] = mx.tanh(x)
    return mx.sum(out[:, :8, :], axis=1), out


def assigned(x, keys):
    keys[(slice(0, B, 1), slice(7, 8, 1), slice(0, D, 1))] = mx.tanh(x)
    return mx.sum(keys[:, :8, :], axis=1), keys


keys, x = mx.random.normal((B, S, D)), mx.random.normal((B, 1, D))
mx.eval(keys, x)
print(f"{mx.default_device()}, a cache buffer of {B * S * D * 4 / 2**20:.0f} MB")


def per_step(f, queued):
    """Seconds per step of 10, the best of 3; each step's input its last output."""
    args = [x, keys]
    mx.eval(f(*args))
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        last = None
        for _ in range(10):
            out = f(*args)
            if queued:
                mx.async_eval(out)
                if last is not None:
                    mx.eval(last)
            else:
                mx.eval(out)
            last = out
        mx.eval(last)
        best = min(best, (time.perf_counter() - t) / 10)
    return best


for name, f in (("as mlx-lm writes it", as_mlx_lm), ("copied, then updated", copied), ("_assign", assigned)):
    print(f"{name:>22}: {per_step(f, False) * 1e3:.3f} ms per step evaluated, {per_step(f, True) * 1e3:.3f} ms queued")
