"""Checks the standard generated kernels on an MLX GPU by hand: error against an
MLX float32 reference, time against eager, mx.compile, mx.fast and a copy, and the CPU
time one call takes to build its graph (launch overhead: it bounds small shapes).

    cargo run -p superopt-kernel --example standard -- cuda > k.py
    python scripts/gpu-kernel-check.py k.py
"""

import importlib.util
import sys
import time

import mlx.core as mx


def load(path):
    spec = importlib.util.spec_from_file_location("kernels", path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def queued(f, calls):
    """Seconds per call over `calls` calls queued back to back, as superopt times them."""
    t0 = time.perf_counter()
    for _ in range(calls):
        mx.async_eval(f())
    mx.synchronize()
    return (time.perf_counter() - t0) / calls


def seconds(f):
    """The best of 3 samples of ~10 ms of queued calls (the device waited for once each)."""
    mx.eval(f())
    calls = max(1, min(10_000, int(0.01 / queued(f, 1))))
    return min(queued(f, calls) for _ in range(3))


def cpu_per_call(f, reps=100):
    """Seconds of Python and graph building per call, nothing evaluated meanwhile."""
    mx.eval(f())
    t0 = time.perf_counter()
    outs = [f() for _ in range(reps)]
    t = (time.perf_counter() - t0) / reps
    mx.eval(outs)
    return t


def naive(name):
    if name == "rms_norm":
        return lambda x, w: x * mx.rsqrt(mx.mean(x * x, axis=-1, keepdims=True) + 1e-5) * w
    if name == "layer_norm":
        def ln(x, w, b):
            m = mx.mean(x, axis=-1, keepdims=True)
            d = x - m
            return d * mx.rsqrt(mx.mean(d * d, axis=-1, keepdims=True) + 1e-5) * w + b
        return ln
    if name == "softmax":
        def sm(x):
            e = mx.exp(x - mx.max(x, axis=-1, keepdims=True))
            return e / mx.sum(e, axis=-1, keepdims=True)
        return sm
    return lambda a, b: a * mx.sigmoid(a) * b


def fast(name):
    return {
        "rms_norm": lambda x, w: mx.fast.rms_norm(x, w, 1e-5),
        "layer_norm": lambda x, w, b: mx.fast.layer_norm(x, w, b, 1e-5),
        "softmax": lambda x: mx.softmax(x, axis=-1),
        "swiglu": None,
    }[name]


def inputs(name, rows, n, dt):
    x = mx.random.normal((rows, n)).astype(dt)
    if name == "rms_norm":
        return [x, (1 + 0.1 * mx.random.normal((n,))).astype(dt)]
    if name == "layer_norm":
        return [x, (1 + 0.1 * mx.random.normal((n,))).astype(dt), mx.random.normal((n,)).astype(dt)]
    if name == "softmax":
        return [x]
    return [x, mx.random.normal((rows, n)).astype(dt)]


def main():
    m = load(sys.argv[1])
    big = mx.random.normal((1 << 26,))
    copy = seconds(lambda: big + 1.0)
    bw = 2 * 4 * (1 << 26) / copy
    print(f"copy bandwidth {bw / 1e12:.2f} TB/s")
    # 131072 rows: more than CUDA's 65535 blocks along y.
    shapes = [(4096, 4096), (8192, 8192), (1000, 1000), (37, 5000), (131072, 128)]
    for name, dtname, launch in m.KERNELS:
        dt = getattr(mx, dtname)
        for rows, n in shapes:
            args = inputs(name, rows, n, dt)
            ref = naive(name)(*[a.astype(mx.float32) for a in args])
            shape = (rows, n)
            best = None
            vec = next(v for v in [8, 4, 2, 1] if v * args[0].itemsize <= 16 and n % v == 0)
            if name == "swiglu":
                configs = [(vec, t, 1, u) for t in [256, 512] for u in [1, 2, 4]]
            else:
                configs = [(vec, t, 1, 1) for t in [32, 64, 128, 256, 512, 1024] if -(-n // (t * vec)) <= 16 and (t == 32 or n // vec > t // 2)]
            for p in configs:
                try:
                    y = launch(shape, *args, params=p)
                    mx.eval(y)
                except Exception as e:
                    print(f"  {name} {dtname} {shape} {p}: FAILED {str(e)[:300]}")
                    continue
                err = (mx.linalg.norm((y.astype(mx.float32) - ref).flatten()) / mx.linalg.norm(ref.flatten())).item()
                t = seconds(lambda: launch(shape, *args, params=p))
                if best is None or t < best[0]:
                    best = (t, p, err)
            nbytes = sum(a.nbytes for a in args) + rows * n * args[0].itemsize
            t_naive = seconds(lambda: naive(name)(*args))
            comp = mx.compile(naive(name))
            t_comp = seconds(lambda: comp(*args))
            f = fast(name)
            t_fast = seconds(lambda: f(*args)) if f else float("nan")
            if best is None:
                print(f"{name:10s} {dtname:8s} {rows}x{n}: no config ran")
                continue
            t, p, err = best
            print(f"{name:10s} {dtname:8s} {rows:6d}x{n:<5d} kernel {t*1e3:.4f} ms ({nbytes / t / bw:.0%} of copy) p={p} err={err:.1e} | naive {t_naive*1e3:.4f} compile {t_comp*1e3:.4f} fast {t_fast*1e3:.4f}")
            if (rows, n) == (1000, 1000):
                cpu_k = cpu_per_call(lambda: launch(shape, *args, params=p))
                cpu_f = cpu_per_call(lambda: f(*args)) if f else float("nan")
                print(f"{'':20s} CPU per call: kernel {cpu_k*1e6:.1f} us, fast {cpu_f*1e6:.1f} us")


if __name__ == "__main__":
    main()
