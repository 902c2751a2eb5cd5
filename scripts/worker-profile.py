"""Times one worker request on a harness, as superopt's worker runs it, and prints where the
time goes (cProfile, by own time): `reference` is one verification case's float64 reference,
`trace` the tracing of fn (the determinism check and mx.export_function) at one size,
`calls` fn's first three calls one by one (a GPU backend compiles kernels at first use) and
the sizes of the kernel caches a later process could reuse (MLX's and the CUDA driver's).
Usage: python scripts/worker-profile.py HARNESS [reference|trace|calls] [SIZE] [SEED] [VARIANT]"""
import cProfile
import os
import pstats
import sys
import time

import mlx.core as mx

here = os.path.dirname(os.path.abspath(__file__))
worker = {"__name__": "superopt_worker"}
source = os.path.join(here, "..", "crates", "worker", "python", "superopt_worker.py")
exec(compile(open(source).read(), "superopt_worker.py", "exec"), worker)
harness = sys.argv[1]
what = sys.argv[2] if len(sys.argv) > 2 else "reference"
size = sys.argv[3] if len(sys.argv) > 3 else "large"
seed = int(sys.argv[4]) if len(sys.argv) > 4 else 0
variant = sys.argv[5] if len(sys.argv) > 5 else "normal"
worker["cmd_load"]({"harness": os.path.abspath(harness)})


def reference():
    mx.eval(worker["reference_graph"](size, seed, variant, mx.cpu))
    return f"the float64 reference of one {variant} case"


def trace():
    got = worker["cmd_trace"]({"size": size, "seed": seed})
    return f"the trace ({len(got['nodes'])} primitives, {len(got['constants'])} constants)"


def folder_size(path):
    files = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
    return f"{path}: {len(files)} files, {sum(os.path.getsize(f) for f in files) / 1e6:.1f} MB"


def calls():
    args, kwargs = worker["make_inputs"](size, seed)
    for k in range(3):
        start = time.perf_counter()
        mx.eval(worker["State"].fn(*args, **kwargs))
        print(f"call {k + 1}: {time.perf_counter() - start:.3f} s")
    tmp = os.environ.get("TMPDIR", "/tmp")
    caches = [os.environ.get("MLX_PTX_CACHE_DIR", os.path.join(tmp, "mlx")), os.path.expanduser("~/.nv/ComputeCache")]
    for c in caches:
        print(folder_size(c) if os.path.isdir(c) else f"{c}: none")
    print("CUDA_CACHE_MAXSIZE", os.environ.get("CUDA_CACHE_MAXSIZE", "unset"))
    return "three calls of fn"


if what not in ("reference", "trace", "calls"):
    sys.exit(f"unknown request {what!r}: reference, trace or calls")
profile = cProfile.Profile()
start = time.perf_counter()
profile.enable()
said = {"reference": reference, "trace": trace, "calls": calls}[what]()
profile.disable()
print(f"{harness} at {size}: {said} in {time.perf_counter() - start:.2f} s")
pstats.Stats(profile).sort_stats("tottime").print_stats(10)
