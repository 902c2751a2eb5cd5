"""Static figures of a generated CUDA kernel without a GPU: ptxas's resources and the PTX
instruction count, compiled with NVRTC for sm_90 inside the function MLX wraps around it.

    superopt kernels suite/kernels/softmax_bf16.py --target cuda -o k.py
    python scripts/kernel-ptx.py k.py 0 T0=bfloat16,O0=bfloat16,N=8192,VEC=8,TPR=256,ITEMS=4

Needs NVRTC (requirements-dev.txt). Instruction counts compare emitter changes; only the
device's timings say what they are worth.
"""

import collections
import importlib.util
import json
import os
import re
import subprocess
import sys

CTYPES = {"float32": "float", "bfloat16": "__nv_bfloat16", "float16": "__half"}


def main():
    path, index, template = sys.argv[1], int(sys.argv[2]), dict(kv.split("=") for kv in sys.argv[3].split(","))
    spec = importlib.util.spec_from_file_location("kernels", path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    body = getattr(m, f"_K{index}_SOURCE")
    names = re.findall(r"\b(in\d+|out\d+)\b", body)
    ins = sorted({n for n in names if n.startswith("in")}, key=lambda n: int(n[2:]))
    outs = sorted({n for n in names if n.startswith("out")}, key=lambda n: int(n[3:]))
    params = []
    for i, n in enumerate(ins):
        params.append(f"const {CTYPES[template[f'T{i}']]}* {n}")
        params += [f"const __grid_constant__ Shape {n}_shape"] * (f"{n}_shape" in body)
        params += [f"const __grid_constant__ int {n}_ndim"] * (f"{n}_ndim" in body)
    params += [f"{CTYPES[template[f'O{j}']]}* {n}" for j, n in enumerate(outs)]
    consts = [f"using {k} = {CTYPES[v]};" if v in CTYPES else f"constexpr int {k} = {v};" for k, v in template.items()]
    source = "\n".join([
        "#include <cuda_bf16.h>", "#include <cuda_fp16.h>",
        "struct Shape { int v[8]; __device__ int operator[](int i) const { return v[i]; } };",
        m._KERNEL_HEADER, "namespace mlx::core::cu {", f"__global__ void k({', '.join(params)}) {{",
        *consts, body, "}", "}",
    ])
    nvrtc = os.path.join(os.path.dirname(__file__), "..", "crates", "kernel", "tests", "nvrtc.py")
    reply = json.loads(subprocess.run([sys.executable, nvrtc], input=json.dumps({"source": source, "arch": "compute_90"}), capture_output=True, text=True, check=True).stdout)
    if not reply["ok"]:
        sys.exit(reply["log"])
    reply_sass = json.loads(subprocess.run([sys.executable, nvrtc], input=json.dumps({"source": source, "arch": "sm_90"}), capture_output=True, text=True, check=True).stdout)
    print(next(line.strip() for line in reply_sass["log"].splitlines() if "registers" in line))
    print(reply["ptx"] if "--ptx" in sys.argv else "", end="")
    ptx = reply["ptx"]
    body_ptx = ptx[ptx.index("{", ptx.index(".entry")):]
    ops = collections.Counter()
    for line in body_ptx.splitlines():
        line = line.strip()
        if line.endswith(";") and not line.startswith((".reg", ".shared", ".local", "//", ".loc")):
            op = line.split(None, 1)[1] if line.startswith("@") else line
            ops[re.split(r"[\s.]", op)[0]] += 1
    print(f"{sum(ops.values())} PTX instructions: " + ", ".join(f"{k} {v}" for k, v in ops.most_common(12)))


if __name__ == "__main__":
    main()
