"""Checks and times the quantized product kernels of a module printed by
`cargo run -p superopt-kernel --example quantized -- cuda` against MLX's own gather_qmm
(Qwen3-30B-A3B's experts: 128, top-8) and quantized_matmul (Llama-3-8B's dense MLP, names
starting dense_; down_combine: the down projection with the top-k combine) at decode batch
1 / 8 / 32: the largest error relative to the output's
largest value, and per call the original (eager and mx.compile) and the kernel, each call
evaluated alone and (piped) 200 calls evaluated together, with the packed bytes the call
reads over its piped time. From 64 pairs on, the gathered products get their
pairs sorted by expert, as mlx-lm's SwitchGLU sorts them (gather_qmm with sorted_indices).
Each kernel runs in every layout given as WARPS/ROWS/COLS (warps per block, rows and
columns per warp; 0 for the launcher's default), and where a fourth is given, STAGE 0 or 1
(the block's rows of x staged in shared memory or not; by default as Quantized::stages says).
Usage: python scripts/gpu-quantized-check.py MODULE [W/R/C,...]
(BATCHES=32 and ONLY=gate_up,down pick batches and kernels by name, as a profiler's run wants.)"""
import importlib.util
import os
import sys
import time

import mlx.core as mx
import mlx.nn as nn

EXPERTS, TOP_K, BITS, GROUP = 128, 8, 4, 64
spec = importlib.util.spec_from_file_location("kernels", sys.argv[1])
kernels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kernels)
def layout(text):
    """WARPS/ROWS/COLS[/STAGE]: 0 for the launcher's default; STAGE 0 or 1 (x in shared memory or not)."""
    v = [int(p) for p in text.split("/")]
    return (v[0] or None, v[1] or None, v[2] or None, v[3] if len(v) > 3 else None)


layouts = [layout(l) for l in (sys.argv[2] if len(sys.argv) > 2 else "4/0/0").split(",")]


def weights(k, n, dtype, seed, experts):
    shape = (experts, n, k) if experts else (n, k)
    w = mx.random.normal(shape, key=mx.random.key(seed)).astype(dtype) * 0.05
    return mx.quantize(w, group_size=GROUP, bits=BITS)


def timed(f, reps=int(os.environ.get("REPS", 200))):
    """Microseconds per call, each call evaluated alone (as a harness's fn is timed)."""
    for _ in range(10):
        mx.eval(f())
    t0 = time.perf_counter()
    for _ in range(reps):
        mx.eval(f())
    return (time.perf_counter() - t0) / reps * 1e6


def piped(f, reps=int(os.environ.get("REPS", 200))):
    """Microseconds per call, `reps` calls evaluated together (as in a model's forward pass,
    where one call's launch overlaps the last one's work)."""
    mx.eval([f() for _ in range(10)])
    t0 = time.perf_counter()
    mx.eval([f() for _ in range(reps)])
    return (time.perf_counter() - t0) / reps * 1e6


BATCHES = [int(b) for b in os.environ.get("BATCHES", "1,8,32").split(",")]
ONLY = os.environ.get("ONLY", "").split(",") if os.environ.get("ONLY") else None


def main():
    for name, dname, k, n, kernel in kernels.KERNELS:
        if ONLY is not None and name not in ONLY:
            continue
        dtype = getattr(mx, dname)
        products = 2 if "gate_up" in name else 1
        dense = name.startswith("dense")
        ws = [weights(k, n, dtype, 10 + p, None if dense else EXPERTS) for p in range(products)]
        flat = [a for w in ws for a in w]
        for batch in BATCHES:
            x = mx.random.normal((batch, 1, 1, k), key=mx.random.key(1)).astype(dtype)
            scores = mx.random.normal((batch, EXPERTS), key=mx.random.key(2))
            rhs = mx.argpartition(-scores, TOP_K - 1, axis=-1)[:, :TOP_K].astype(mx.uint32)
            lhs = mx.broadcast_to(mx.arange(batch, dtype=mx.uint32)[:, None], rhs.shape)
            combine = name.startswith("down_combine")
            sort = not dense and not combine and rhs.size >= 64
            if sort:  # as mlx-lm's _gather_sort
                order = mx.argsort(rhs.flatten())
                x = x.reshape(batch, 1, k)[order // TOP_K]
                rhs = rhs.flatten()[order]
                lhs = mx.arange(rhs.size, dtype=mx.uint32)

            if dense:
                x = x.reshape(batch, k)

            def product(x, w, s, b, lhs, rhs):
                if dense:
                    return mx.quantized_matmul(x, w, s, b, transpose=True, group_size=GROUP, bits=BITS)
                if sort:
                    return mx.gather_qmm(x, w, s, b, rhs_indices=rhs, transpose=True, group_size=GROUP, bits=BITS,
                                         sorted_indices=True)
                return mx.gather_qmm(x, w, s, b, lhs_indices=lhs, rhs_indices=rhs, transpose=True,
                                     group_size=GROUP, bits=BITS)

            router = mx.softmax(mx.random.normal(rhs.shape, key=mx.random.key(3)), axis=-1).astype(dtype)

            def original(x=x, lhs=lhs, rhs=rhs):
                outs = [product(x, w, s, b, lhs, rhs) for w, s, b in ws]
                if combine:
                    return (outs[0].squeeze(-2) * router[..., None]).sum(axis=-2, keepdims=True)
                return nn.silu(outs[0]) * outs[1] if products == 2 else outs[0]

            compiled = mx.compile(original)
            want = original().astype(mx.float32)
            scale = mx.abs(want).max().item()
            line = f"{name:13s} {dname:9s} batch {batch:3d}{' sorted' if sort else ''}:"
            experts = 1 if dense else len(set(rhs.flatten().tolist()))
            packed = experts * products * n * (k * BITS // 8 + 2 * (k // GROUP) * dtype.size)
            t_orig, t_comp = timed(original), timed(compiled)
            p_best = min(piped(original), piped(compiled))
            line += f" original {t_orig:7.1f} us, compiled {t_comp:7.1f} us (piped, best {p_best:6.1f} us);"
            for warps, rows, cols, stage in layouts:
                operands = (x,) if dense else (x, lhs, rhs)
                flat_in = flat + [router] if combine else flat
                launch = dict(warps=warps, rows_per_warp=rows, cols=cols)
                if stage is not None and not combine:
                    launch["stage"] = stage
                got = kernel(*operands, *flat_in, **launch)
                err = (mx.abs(got.astype(mx.float32) - want).max().item()) / scale
                t = timed(lambda: kernel(*operands, *flat_in, **launch))
                p = piped(lambda: kernel(*operands, *flat_in, **launch))
                label = f"{warps or 4}/{rows or 0}/{cols or 0}" + ("" if stage is None else f"/{stage}")
                line += (f"\n    {label} {t:6.1f} us {min(t_orig, t_comp) / t:4.2f}x"
                         f" err {err:.1e}; piped {p:6.1f} us {p_best / p:4.2f}x {packed / p / 1e3:6.0f} GB/s")
            print(line, flush=True)


main()
