"""Size tables for the suite: real-model sizes, or small ones for a 2-core CPU (SUPEROPT_SIZES=cpu)."""
import os


def pick(gpu, cpu):
    return cpu if os.environ.get("SUPEROPT_SIZES") == "cpu" else gpu
