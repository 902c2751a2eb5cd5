"""Times the float64 reference of one verification case of a harness, as superopt's worker
computes it, and prints where the time goes (cProfile, by own time).
Usage: python scripts/reference-profile.py HARNESS [SIZE] [SEED]"""
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
harness, size = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "large"
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
worker["cmd_load"]({"harness": os.path.abspath(harness)})
profile = cProfile.Profile()
start = time.perf_counter()
profile.enable()
outs = worker["reference_graph"](size, seed, "normal", mx.cpu)
mx.eval(outs)
profile.disable()
print(f"{harness} at {size}: one case's float64 reference in {time.perf_counter() - start:.2f} s")
pstats.Stats(profile).sort_stats("tottime").print_stats(8)
