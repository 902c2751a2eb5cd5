"""Compiles CUDA source with NVRTC, as MLX's CUDA backend does, without a GPU.

stdin: {"source": str, "arch": "sm_90"}; stdout: {"ok": bool, "log": str, "ptx": str} (for
an sm_ architecture the log holds ptxas's resource report; for compute_ the PTX is there).
Exit 3 when NVRTC is not installed (pip: nvidia-cuda-nvrtc-cu12).
"""
import ctypes
import json
import os
import sys


def package_dir(name):
    try:
        module = __import__(f"nvidia.{name}", fromlist=["_"])
    except ImportError:
        return None
    return os.path.dirname(module.__file__) if module.__file__ else list(module.__path__)[0]


def main():
    nvrtc_dir, runtime_dir = package_dir("cuda_nvrtc"), package_dir("cuda_runtime")
    if not nvrtc_dir or not runtime_dir:
        print("NVRTC is not installed: pip install nvidia-cuda-nvrtc-cu12 nvidia-cuda-runtime-cu12", file=sys.stderr)
        sys.exit(3)
    req = json.load(sys.stdin)
    lib = ctypes.CDLL(os.path.join(nvrtc_dir, "lib", "libnvrtc.so.12"))
    prog = ctypes.c_void_p()
    if lib.nvrtcCreateProgram(ctypes.byref(prog), req["source"].encode(), b"superopt.cu", 0, None, None) != 0:
        raise RuntimeError("nvrtcCreateProgram failed")
    opts = [f"--gpu-architecture={req['arch']}", f"--include-path={runtime_dir}/include", "--ptxas-options=-v"]
    args = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
    rc = lib.nvrtcCompileProgram(prog, len(opts), args)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    ptx = ""
    if rc == 0 and req["arch"].startswith("compute_"):
        lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetPTX(prog, buf)
        ptx = buf.value.decode()
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    json.dump({"ok": rc == 0, "log": log.value.decode(errors="replace"), "ptx": ptx}, sys.stdout)


if __name__ == "__main__":
    main()
