"""superopt's worker: the only part of superopt that runs MLX.

Reads one JSON request per line on stdin, writes one JSON reply per line on the
protocol stream. It loads the harness, builds inputs, traces `fn` with
`mx.export_function`, runs and times candidate modules and measures errors.
It decides nothing: every decision is made by the Rust side.
"""

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import inspect
import itertools
import json
import math
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor


def keep_freed_heap():
    """On glibc, freed heap memory stays in the process (no trimming, blocks up to 32 MB
    from the heap, 256 MB of headroom): MLX's CPU backend mallocs every temporary, and
    glibc's default hands them back to the kernel and faults them in again on the next
    call. On this project's 2-core CPU that tripled a 4 MB rms_norm's time, by an amount
    that depended on the heap's history: one program timed 1.2x faster than itself."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    libc.mallopt(m_trim_threshold, 2**31 - 1)
    libc.mallopt(m_top_pad, 2**28)
    libc.mallopt(m_mmap_threshold, 2**25)


keep_freed_heap()

import mlx.core as mx  # noqa: E402 (after the allocator's settings)

try:
    import numpy as np
except ImportError:  # the float64 references then use MLX's own CPU matmul
    np = None
try:
    from threadpoolctl import threadpool_limits
except ImportError:  # numpy's BLAS then keeps the threads the worker started with
    threadpool_limits = None

# The names and constants the Rust side shares (crates/worker/src/protocol.rs;
# crates/worker/tests/protocol.rs checks that both agree).
SIZES = ("small", "typical", "large")
VARIANTS = ("normal", "zeros", "large", "tiny", "negative", "ties", "nonfinite")
# Programs the worker makes itself; every other program id is one loaded by `program`.
ORIGINAL = "original"
COMPILED_ORIGINAL = "compiled_original"
# How long one timing sample lasts.
SAMPLE_SECONDS = 0.01


class HarnessError(Exception):
    """The user's harness is at fault; the message says how."""


class Untraceable(Exception):
    """MLX cannot export fn; superopt leaves it unchanged."""


class CandidateError(Exception):
    """A candidate program failed; the run goes on without it."""


class Kept(dict):
    """Per-case values (a case's fn outputs, its float64 reference) holding at most
    State.keep_bytes of arrays: past that, the least recently used that `again` says can
    be had again (a reference from its folder, fn's outputs by another call) are dropped.
    A real model's large size holds tens of GB per case set; kept all at once they took a
    GPU's memory (an 11-case reference set of 4.3 GB outputs, and fn's outputs beside).
    `beside(key)`: what else a key's value holds elsewhere (a varying fn's second outputs)."""

    def __init__(self, again, beside=lambda key: None):
        super().__init__()
        self.again = again
        self.beside = beside

    def held(self, key, value):
        return held_bytes(value) + held_bytes(self.beside(key))

    def __getitem__(self, key):
        value = super().pop(key)
        super().__setitem__(key, value)  # the most recently used last
        return value

    def __setitem__(self, key, value):
        super().pop(key, None)
        super().__setitem__(key, value)
        total = sum(self.held(k, v) for k, v in self.items())
        for k in [k for k in self if k != key]:
            if total <= State.keep_bytes:
                break
            held = self.held(k, super().__getitem__(k))
            if self.again(k):
                total -= held
                super().pop(k)


def held_bytes(value):
    """Bytes of the arrays a kept value holds (a list of outputs, Targets, None)."""
    if isinstance(value, (list, tuple)):
        return sum(map(held_bytes, value))
    if isinstance(value, Target):
        return held_bytes(value.hi) + held_bytes(value.lo)
    return value.nbytes if isinstance(value, mx.array) else 0


def keep_bytes():
    """How many bytes of case values a worker keeps: a quarter of the device's memory (on
    a CPU or a unified-memory GPU, of the machine's)."""
    try:
        memory = mx.device_info().get("memory_size") or 0
    except Exception:
        memory = 0
    if not memory and hasattr(os, "sysconf"):
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return memory // 4 if memory else 2**34


class State:
    harness = None
    # Bytes of case values (references, fn's outputs) kept in memory (Kept).
    keep_bytes = 2**34
    # Where the float64 references are kept for the run (`load`'s `references`): a worker
    # restarted after a crash reads them back instead of computing them again.
    reference_dir = None
    # Seconds spent computing float64 references, per size.
    reference_seconds = {}
    # Where the float64 references run: mx.gpu once `reference_device` has checked that
    # the GPU computes them as the CPU does, else mx.cpu.
    reference_stream = mx.cpu
    # How deep fn is inside mx.grad/vjp/jvp/vmap while its reference runs: the numpy paths
    # give values, not arrays a transformation can follow, so they stand aside there.
    transforming = 0
    fn = None
    factory = None
    # The harness's DEVICE_TIME: timings count the device's part of each call (device_block).
    device_time = False
    programs = {}
    constants = {}
    references = Kept(lambda key: State.reference_dir is not None and os.path.isdir(reference_path(key)))
    # Per case, `sensitivity`'s figures, and `spread`'s.
    sensitivities = {}
    spreads = {}
    # While `spread`'s program runs: the key of the next rounding's random draw (None: no
    # rounding, outside it or inside the rounding's own arithmetic).
    rounding = None
    # Sizes at which fn made no discrete choice (see discrete_choices).
    choiceless = set()
    launch_arrays = {}  # (program, kernel, shape): the arrays a quantized launch was recorded with
    originals = Kept(lambda key: forget_second_original(key), lambda key: State.second_originals.get(key))
    # Per case, the array arguments fn updates in place, as its call leaves them: [(number, array)].
    updates = Kept(lambda key: True)
    # Where fn varies in rounding (cmd_varies): a second call's outputs per case.
    varies = False
    second_originals = {}
    identical = {}
    targets = Kept(lambda key: True)  # each made again from its reference
    original_figures = {}


# ---------------------------------------------------------------- harness


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise HarnessError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise HarnessError(f"{path} has a syntax error at line {e.lineno}: {e.msg}")
    except Exception as e:
        raise HarnessError(f"importing {path} raised {type(e).__name__}: {e}")
    finally:
        sys.path.pop(0)
    return module


def cmd_load(req):
    module = load_module(req["harness"], "_superopt_harness")
    for name in ("fn", "input_factory"):
        if not callable(getattr(module, name, None)):
            raise HarnessError(f"the harness defines no function `{name}`; see the harness contract in README.md")
    State.harness, State.fn, State.factory = module, module.fn, module.input_factory
    step_dims = step_dims_of(module)
    State.device_time = getattr(module, "DEVICE_TIME", False) is True
    State.reference_dir = req.get("references")
    State.keep_bytes = keep_bytes()
    State.reference_seconds = {}
    State.reference_stream = mx.cpu
    State.references.clear()
    State.sensitivities.clear()
    State.spreads.clear()
    State.originals.clear()
    State.updates.clear()
    State.varies = False
    State.second_originals.clear()
    State.identical.clear()
    State.targets.clear()
    State.original_figures.clear()
    return {"fn": getattr(State.fn, "__name__", "fn"), "step_dims": step_dims, "device_time": State.device_time}


def step_dims_of(module):
    """The harness's optional `STEP_DIMS`, {argument number: [axes]}: dims of fn's array
    arguments (counted from 0) that change from one call to the next where fn runs."""
    steps = getattr(module, "STEP_DIMS", {})
    try:
        return [{"input": int(i), "axis": int(a)} for i, axes in dict(steps).items() for a in axes]
    except (TypeError, ValueError):
        raise HarnessError("STEP_DIMS must map fn's array argument numbers to lists of axes, e.g. {1: [2], 3: [0]}")


def make_inputs(size, seed):
    try:
        got = State.factory(size, seed)
    except Exception as e:
        raise HarnessError(f"input_factory({size!r}, {seed}) raised {type(e).__name__}: {e}")
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        raise HarnessError(f"input_factory({size!r}, {seed}) must return (args, kwargs); it returned {type(got).__name__}")
    args, kwargs = got
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, dict):
        raise HarnessError(
            f"input_factory({size!r}, {seed}) must return (args, kwargs) with args a tuple and kwargs a dict; "
            f"got ({type(args).__name__}, {type(kwargs).__name__})"
        )
    for v in list(args) + list(kwargs.values()):
        if isinstance(v, (list, tuple, dict)):
            raise HarnessError(f"input_factory({size!r}, {seed}) gave a {type(v).__name__} argument: pass arrays and plain Python values")
    mx.eval([v for v in list(args) + list(kwargs.values()) if isinstance(v, mx.array)])
    return list(args), dict(kwargs)


def outputs_of(result, who):
    if isinstance(result, mx.array):
        return [result], "array"
    if isinstance(result, (tuple, list)) and result and all(isinstance(r, mx.array) for r in result):
        return list(result), "tuple" if isinstance(result, tuple) else "list"
    raise CandidateError(f"{who} must return an mx.array or a tuple of them; it returned {type(result).__name__}")


def call(f, args, kwargs, who):
    try:
        out = f(*args, **kwargs)
    except (HarnessError, CandidateError):
        raise
    except Exception as e:
        raise CandidateError(f"{who} raised {type(e).__name__}: {e}")
    outs, kind = outputs_of(out, who)
    mx.eval(outs)
    return outs, kind


def call_original(args, kwargs):
    try:
        return call(State.fn, args, kwargs, "fn")
    except CandidateError as e:
        shapes = ", ".join(f"{list(a.shape)} {a.dtype}" for a in array_values(args, kwargs))
        raise HarnessError(f"{e} (arrays: {shapes or 'none'})")


UNSIGNED = {1: mx.uint8, 2: mx.uint16, 4: mx.uint32, 8: mx.uint64}


def as_bits(a):
    """a's elements as unsigned integers of the same width, flat (bool as 0/1 bytes). The
    width is kept: MLX's CPU reductions crash past 2^31 elements. Contiguous first: a
    broadcast array reshapes to a view whose buffer a memoryview cannot read."""
    flat = mx.contiguous(a).reshape(-1)
    if a.dtype == mx.bool_:
        return flat.astype(mx.uint8)
    return flat.view(UNSIGNED[a.itemsize])


def same_bits(a, b):
    """Whether a and b are bit-identical (NaN payloads and signed zeros included)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return mx.array_equal(as_bits(a), as_bits(b)).item()


def all_same_bits(xs, ys):
    return len(xs) == len(ys) and all(same_bits(x, y) for x, y in zip(xs, ys))


CHUNK_BYTES = 1 << 28


def digest(a):
    """SHA-256 of a's dtype, shape and bytes. The bytes are read in blocks of rows: a buffer
    of 2 GiB or more cannot become one bytes object, and MLX slices take 32-bit indices."""
    flat = as_bits(a)
    mx.eval(flat)
    width = math.gcd(flat.size, 1 << 20) or 1
    grid = flat.reshape(-1, width)
    step = max(1, CHUNK_BYTES // (width * flat.itemsize))
    h = hashlib.sha256()
    h.update(f"{a.dtype}{a.shape}".encode())
    for start in range(0, grid.shape[0], step):
        h.update(memoryview(grid[start : start + step]))
    return h.hexdigest()


# ---------------------------------------------------------------- tracing


def json_scalar(v):
    if isinstance(v, float) and not math.isfinite(v):
        return {"float": "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")}
    return v


def json_arg(v):
    if isinstance(v, mx.Dtype):
        return {"dtype": str(v).replace("mlx.core.", "")}
    if isinstance(v, (list, tuple)):
        return [json_arg(x) for x in v]
    if isinstance(v, (bool, int, str)) or v is None:
        return v
    if isinstance(v, float):
        return json_scalar(v)
    raise HarnessError(f"a primitive argument of type {type(v).__name__} cannot be recorded")


def array_ref(t):
    name, shape, dtype = t
    return [name, list(shape), str(dtype).replace("mlx.core.", "")]


def param_names(n_args):
    try:
        sig = inspect.signature(State.fn)
    except (TypeError, ValueError):
        return [f"arg{i}" for i in range(n_args)]
    names = []
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and len(names) < n_args:
            names.append(p.name)
    names += [f"arg{i}" for i in range(len(names), n_args)]
    return names


PARAM_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: "positional_only",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional_or_keyword",
    inspect.Parameter.KEYWORD_ONLY: "keyword_only",
}


def fn_params(f):
    """fn's parameters as the written module declares them: name, kind and default (a plain
    scalar or None as itself, any other default as opaque). [] where fn takes *args or
    **kwargs or has no signature: the module then takes the traced parameters."""
    try:
        sig = inspect.signature(f)
    except (TypeError, ValueError):
        return []
    out = []
    for p in sig.parameters.values():
        if p.kind not in PARAM_KINDS:
            return []
        q = {"name": p.name, "kind": PARAM_KINDS[p.kind], "default": {"is": "required"}}
        if p.default is not p.empty:
            plain = p.default is None or type(p.default) in (bool, str) or (
                type(p.default) is int and abs(p.default) < 2**53) or (
                type(p.default) is float and math.isfinite(p.default))
            q["default"] = {"is": "literal", "value": p.default} if plain else {"is": "opaque"}
        out.append(q)
    return out


def literal(v, name):
    try:
        json.dumps(v)
        return v
    except TypeError:
        raise HarnessError(f"argument {name} is a {type(v).__name__}: superopt takes arrays and plain Python values")


def contiguous_identity(a, allow_col_major=False, stream=None):
    return a


def export_events(f, args, kwargs, written=()):
    """Runs mx.export_function on f with a callback; returns the recorded trace. The array
    arguments numbered in `written` (f updates them in place) are traced as further
    outputs after f's own: their values when f returns."""
    names = param_names(len(args))
    params, arrays = [], []
    for name, v in list(zip(names, args)) + list(kwargs.items()):
        keyword = name in kwargs
        if isinstance(v, mx.array):
            params.append({"name": name, "kind": "array", "slot": len(arrays), "keyword": keyword})
            arrays.append(v)
        else:
            params.append({"name": name, "kind": "literal", "value": literal(v, name), "keyword": keyword})
    n_pos = len(args)

    def rebuild(arrs):
        vals = [arrs[p["slot"]] if p["kind"] == "array" else p["value"] for p in params]
        return vals[:n_pos], {p["name"]: v for p, v in zip(params[n_pos:], vals[n_pos:])}

    kind = {}

    def traced(*arrs):
        a, k = rebuild(arrs)
        outs, kind["k"] = outputs_of(f(*a, **k), "fn")
        return list(outs) + [arrs[i] for i in written]  # `a[...] = v` rebinds the argument itself

    real_contiguous = mx.contiguous
    mx.contiguous = contiguous_identity  # Contiguous cannot be exported and never changes values.
    try:
        try:
            events = export_with(traced, arrays, compiled=True)
        except Untraceable as e:
            if "Compiled" not in str(e):
                raise
            # A compiled function (mlx.nn's activations) applied to a constant leaves a
            # primitive the export cannot save: traced as the plain operations it runs.
            events = export_with(traced, arrays, compiled=False)
    finally:
        mx.contiguous = real_contiguous
    return params, kind.get("k", "array"), events


def export_with(traced, arrays, compiled):
    events = []
    if not compiled:
        mx.disable_compile()
    try:
        mx.export_function(events.append, traced, *arrays)
    except HarnessError:
        raise
    except Exception as e:
        raise Untraceable(f"mx.export_function cannot trace fn ({type(e).__name__}: {e})")
    finally:
        if not compiled:
            mx.enable_compile()
    return events


def record(params, output_kind, events):
    out = {"params": [], "output_kind": output_kind, "inputs": [], "outputs": [], "constants": [], "nodes": []}
    for e in events:
        t = e["type"]
        if t == "inputs":
            out["inputs"] = [array_ref(i) for i in e["inputs"]]
        elif t == "outputs":
            out["outputs"] = [array_ref(o) for o in e["outputs"]]
        elif t == "constants":
            for name, arr in e["constants"]:
                out["constants"].append(constant_record(name, arr))
        elif t == "primitive":
            out["nodes"].append({
                "op": e["name"],
                "args": json_arg(e["arguments"]),
                "inputs": [array_ref(i) for i in e["inputs"]],
                "outputs": [array_ref(o) for o in e["outputs"]],
            })
    for p in params:
        q = {k: v for k, v in p.items() if k != "slot"}
        if p["kind"] == "array":
            q["array"] = out["inputs"][p["slot"]][0]
        out["params"].append(q)
    return out


def constant_record(name, arr):
    mx.eval(arr)
    rec = {"name": name, "shape": list(arr.shape), "dtype": str(arr.dtype).replace("mlx.core.", "")}
    if arr.ndim == 0:
        v = arr.item()
        rec["scalar"] = json_scalar(v)
    else:
        key = digest(arr)
        State.constants[key] = arr
        rec["key"] = key
    return rec


# Two calls of fn on the same inputs may differ in rounding (see rounding_apart): by at most
# this many units of the output dtype's eps (relative L2), and never less than the floor
# (float32's eps is far below the reordered sums of a long reduction). A random fn differs
# by its whole spread.
ROUNDING_APART = 2
ROUNDING_APART_FLOOR = 1e-4


def cmd_trace(req):
    """Traces fn (checking it is deterministic), or a loaded program when `program` is given."""
    size, seed = req["size"], req["seed"]
    args, kwargs = make_inputs(size, seed)
    if req.get("program"):
        f = program(req["program"])
        try:
            written = updated_by(f, size, seed)
            params, kind, events = export_events(f, args, kwargs, written)
        except HarnessError as e:
            raise CandidateError(str(e))
        return dict(record(params, kind, events), written=written)
    args2, kwargs2 = make_inputs(size, seed)
    arrays, fresh = array_values(args, kwargs), array_values(args2, kwargs2)
    if not all_same_bits(arrays, fresh):
        raise HarnessError(f"input_factory({size!r}, {seed}) is not deterministic: two calls gave different arrays")
    first, _ = call_original(args, kwargs)
    # What the call changed in its arguments (args2 is untouched yet): fn updates them in place.
    updated = changed(arrays, fresh)
    second, _ = call_original(args2, kwargs2)
    apart = 0.0 if all_same_bits(first, second) else rounding_apart(first, second)
    if apart is None:
        raise HarnessError(f"fn is nondeterministic: two calls on the same {size!r} inputs (seed {seed}) gave different outputs")
    params, kind, events = export_events(State.fn, args, kwargs, updated)
    traced = dict(record(params, kind, events), written=updated)
    if not any(n["op"] in DISCRETE_PRIMITIVES for n in traced["nodes"]):
        State.choiceless.add(req["size"])
    return dict(traced, varies=apart or None, updated=updated, fn_params=fn_params(State.fn))


def updated_by(f, size, seed):
    """The array arguments (numbered as traced) that f updates in place, by one call on
    fresh inputs compared with another fresh set."""
    args, kwargs = make_inputs(size, seed)
    args2, kwargs2 = make_inputs(size, seed)
    call(f, args, kwargs, "the candidate")
    return changed(array_values(args, kwargs), array_values(args2, kwargs2))


def array_values(args, kwargs):
    """The array arguments, positional ones first (as traced and as `array_args` names them)."""
    return [a for a in list(args) + list(kwargs.values()) if isinstance(a, mx.array)]


def changed(arrays, fresh):
    """The numbers of the arrays a call changed: those no longer bit-identical to a fresh set."""
    return [i for i, (a, b) in enumerate(zip(arrays, fresh)) if not same_bits(a, b)]


def rounding_apart(xs, ys):
    """How far two calls' outputs are apart where they differ in rounding only (the largest
    relative L2 distance of a float output); None where they differ more: other shapes or
    dtypes, an integer output, NaN/Inf at other places, or a distance over ROUNDING_APART
    units of the output's dtype. A GPU kernel may sum in an order that depends on more than
    its inputs' values (their layout in memory, say): two calls of a deterministic fn can
    then differ in their last bits."""
    worst = 0.0
    for x, y in zip(xs, ys):
        if x.shape != y.shape or x.dtype != y.dtype or not mx.issubdtype(x.dtype, mx.inexact):
            return None
        bound = max(ROUNDING_APART * float(mx.finfo(x.dtype).eps), ROUNDING_APART_FLOOR)
        with mx.stream(mx.cpu):
            apart = finite_apart(cpu64(x), cpu64(y))
        if apart is None or apart > bound:
            return None
        worst = max(worst, apart)
    return worst


def cmd_save_constants(req):
    tensors = {k: State.constants[k] for k in req["keys"]}
    mx.save_safetensors(req["path"], tensors)
    return {"saved": len(tensors)}


def cmd_load_constants(req):
    """Keeps the constants of a file cmd_save_constants wrote (a restarted worker has none)."""
    for k, v in mx.load(req["path"]).items():
        State.constants.setdefault(k, v)
    return {}


# ---------------------------------------------------------------- programs


def cmd_program(req):
    pid = req["id"]
    try:
        module = load_module(req["path"], f"_superopt_candidate_{pid}")
    except HarnessError as e:
        raise CandidateError(str(e))
    f = getattr(module, req.get("entry", "optimized"), None)
    if not callable(f):
        raise CandidateError(f"{req['path']} defines no function `{req.get('entry', 'optimized')}`")
    State.programs[pid] = f
    return {}


def program(pid):
    if pid == ORIGINAL:
        return State.fn
    if pid == COMPILED_ORIGINAL:
        if COMPILED_ORIGINAL not in State.programs:
            State.programs[COMPILED_ORIGINAL] = mx.compile(State.fn)
        return State.programs[COMPILED_ORIGINAL]
    return State.programs[pid]


# ---------------------------------------------------------------- verification


def edge(v, variant, index=0):
    """The edge-case version of the `index`-th float input: zeros, 1e4 and 1e-4
    magnitudes, all negative, rounded to integers (ties for max/argmax), or
    NaN/+Inf/-Inf at three places (first, middle, last), shifted by the input's index so
    that no two inputs have them at the same places (a candidate that swallows one input's
    NaN is caught where the other inputs are finite), and up to four more at places drawn
    by the input's size and index (these may meet another input's or the first three). Integer and boolean inputs stay as they are."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown input variant {variant!r}")
    if variant == "normal" or not isinstance(v, mx.array) or not mx.issubdtype(v.dtype, mx.floating):
        return v
    if variant == "zeros":
        return mx.zeros_like(v)
    if variant == "large":
        return v * 1e4
    if variant == "tiny":
        return v * 1e-4
    if variant == "negative":
        return -mx.abs(v)
    if variant == "ties":
        return mx.round(v)
    if v.size == 0:
        return v
    flat = mx.array(v.reshape(-1))
    n = flat.size
    shift = index * (n // 7 + 1)
    places = [((at + shift) % n, value) for at, value in ((0, "nan"), (n // 2, "inf"), (n - 1, "-inf"))]
    # First, middle and last can all sit on the diagonals of square matrices (a masked part):
    # in inputs of 64 values or more, up to four more at places drawn from (n, index).
    draw = random.Random(n * 7919 + index)
    places += [(draw.randrange(n), value) for value in ("nan", "inf", "-inf", "nan")[: min(4, n // 64)]]
    for at, value in places:
        flat[at] = float(value)
    return flat.reshape(v.shape)


def inputs_for(size, seed, variant):
    args, kwargs = make_inputs(size, seed)
    args = [edge(a, variant, i) for i, a in enumerate(args)]
    kwargs = {k: edge(v, variant, len(args) + i) for i, (k, v) in enumerate(kwargs.items())}
    mx.eval(array_values(args, kwargs))
    return args, kwargs


def upcast(v):
    if isinstance(v, mx.array) and mx.issubdtype(v.dtype, mx.floating):
        return v.astype(mx.float64)
    return v


NARROW_FLOATS = ("float32", "float16", "bfloat16")


def blas_matmul(mlx_matmul):
    """`mlx_matmul` for the float64 references, with float64 products (MLX promotes a
    float32 weight times a float64 input to float64) done by numpy's BLAS (products64):
    MLX's CPU matmul is ~40x slower in float64, which made the references of real-size
    matmuls outlast a run's budget. Anything else (other dtypes, vectors) goes to MLX."""

    def matmul(a, b, *rest, **kwargs):
        floats = all(isinstance(x, mx.array) and mx.issubdtype(x.dtype, mx.floating) and x.ndim >= 2 for x in (a, b))
        if np is None or State.transforming or rest or kwargs or not floats or mx.float64 not in (a.dtype, b.dtype):
            return mlx_matmul(a, b, *rest, **kwargs)
        out = products64(np.asarray(a.astype(mx.float64)), np.asarray(b.astype(mx.float64)))
        return mlx_matmul(a, b) if out is None else from_numpy64(out)

    return matmul


def from_numpy64(a):
    """A float64 numpy array as an MLX array: the array itself where `a` is a whole
    mlx_backed view, else its bits copied as integers (MLX's float64 conversion is twice as
    slow, seconds for a real model's attention scores)."""
    backed = mlx_backing(a)
    if backed is not None:
        return backed
    a = np.asarray(a, dtype=np.float64)
    a = a if a.flags.c_contiguous else a.copy(order="C")
    return mx.array(a.view(np.uint64)).view(mx.float64)


# The most work (in multiply-adds, against the whole product's) that products64 spends
# summing term by term the outputs an infinity touches, before it leaves them to MLX.
TERMWISE_SHARE = 0.25


def products64(a, b):
    """a @ b of float64 numpy arrays with IEEE's NaN and Inf (BLAS may not keep them):
    BLAS multiplies the finite values; an output whose row of a or column of b holds a
    NaN is NaN; one whose row or column holds an infinity is summed term by term. None
    where that term-by-term work is more than TERMWISE_SHARE of the product."""
    fa, fb = np.isfinite(a), np.isfinite(b)
    if fa.all() and fb.all():
        shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
        return np.matmul(a, b, out=mlx_backed(shape))
    with np.errstate(all="ignore"):
        return nonfinite_products(a, b, fa, fb)


def mlx_backed(shape, dtype=mx.float64):
    """A writable numpy view of a new MLX array (CPU): a result written there is
    that MLX array (from_numpy64), not copied into one. A 4.3 GB attention-score reference
    spent 8 s of its 19 s in the copy on this project's CPU, and held two copies."""
    x = mx.zeros(shape, dtype=dtype, stream=mx.cpu)
    mx.eval(x)
    return np.asarray(x)


def mlx_backing(a):
    """The MLX array an mlx_backed view `a` shows whole, in a's shape; None where `a` is
    not one (a copy, a slice, another order, another dtype)."""
    root = a
    while isinstance(getattr(root, "base", None), np.ndarray):
        root = root.base
    backing = getattr(root, "base", None)
    if not (isinstance(backing, memoryview) and isinstance(backing.obj, mx.array)):
        return None
    whole = a.size == root.size and a.ctypes.data == root.ctypes.data and a.flags.c_contiguous
    same = {np.dtype(np.float64): mx.float64, np.dtype(np.float32): mx.float32}.get(a.dtype) == backing.obj.dtype
    return backing.obj.reshape(a.shape) if whole and same else None


def nonfinite_products(a, b, fa, fb):
    """products64 where a or b holds a NaN or an infinity (fa, fb: where they are finite)."""
    out = np.matmul(np.where(fa, a, 0.0), np.where(fb, b, 0.0))
    batch, (m, k), n = out.shape[:-2], a.shape[-2:], b.shape[-1]
    a, b = np.broadcast_to(a, batch + a.shape[-2:]), np.broadcast_to(b, batch + b.shape[-2:])
    nan_rows, nan_cols = np.isnan(a).any(-1), np.isnan(b).any(-2)
    inf_rows = np.broadcast_to(~fa.all(-1), batch + (m,)) & ~nan_rows
    inf_cols = np.broadcast_to(~fb.all(-2), batch + (n,)) & ~nan_cols
    if (inf_rows.sum() * n + inf_cols.sum() * m) > TERMWISE_SHARE * out.size:
        return None
    out[nan_rows] = np.nan
    np.moveaxis(out, -1, -2)[nan_cols] = np.nan
    for *at, i in np.argwhere(inf_rows):
        out[(*at, i)] = (a[(*at, i)][:, None] * b[tuple(at)]).sum(0)
    for *at, j in np.argwhere(inf_cols):
        out[(*at, slice(None), j)] = (a[tuple(at)] * b[(*at, slice(None), j)][None, :]).sum(1)
    return out


def numpy_here():
    """Whether a reference computes in numpy here: numpy is there, no transformation is
    tracing fn (see untransformed), and the reference runs on the CPU."""
    return np is not None and not State.transforming and mx.default_device() == mx.cpu


def dequantized64(w, scales, biases, group_size=None, bits=None):
    """Affine-packed weights' exact values in float64: q * scale + bias per group (MLX's
    own dequantize rounds to the scales' dtype). The integers q come from dequantizing
    with unit scales and zero biases, exact in float32. MLX's defaults: groups of 64, 4 bits.
    In numpy where numpy_here (MLX's CPU float64 arithmetic is ~10x slower)."""
    if numpy_here():
        return from_numpy64(dequantized_numpy(w, scales, biases, group_size, bits))
    q = unit_dequantized(w, scales, group_size, bits).astype(mx.float64)
    groups = scales.shape[-1]
    q = q.reshape(*q.shape[:-1], groups, q.shape[-1] // groups)
    exact = q * scales.astype(mx.float64)[..., None] + biases.astype(mx.float64)[..., None]
    return exact.reshape(*exact.shape[:-2], -1)


def unit_dequantized(w, scales, group_size, bits):
    """The packed integers q of w, as float32 (exact): w dequantized with unit scales and zero biases."""
    unit, zero = mx.ones(scales.shape, dtype=FLOAT32), mx.zeros(scales.shape, dtype=FLOAT32)
    return mlx_dequantize(w, unit, zero, group_size=group_size or 64, bits=bits or 4)


def dequantized_numpy(w, scales, biases, group_size=None, bits=None):
    """dequantized64 as a float64 numpy array."""
    q = np.asarray(unit_dequantized(w, scales, group_size, bits))
    s, b = np.asarray(scales.astype(mx.float64)), np.asarray(biases.astype(mx.float64))
    q = q.reshape(*q.shape[:-1], s.shape[-1], -1)
    exact = q * s[..., None] + b[..., None]
    return exact.reshape(*exact.shape[:-2], -1)


def affine(mode, biases, extra):
    """Whether a quantized call is one exact_* below computes (affine packing, biases given,
    no arguments they do not know)."""
    return mode == "affine" and biases is not None and not extra


def oriented(w64, transpose):
    return mx.swapaxes(w64, -1, -2) if transpose else w64


# mx.quantized_matmul, mx.gather_qmm and mx.dequantize for the float64 references:
# affine-packed weights dequantized exactly (see dequantized64), the products in float64
# (MLX's quantized kernels take no float64). Other modes go to MLX.


def exact_quantized_matmul(x, w, scales, biases=None, transpose=True, group_size=None, bits=None, mode="affine", **kw):
    if not affine(mode, biases, kw):
        return mlx_quantized_matmul(x, w, scales, biases, transpose, group_size, bits, mode, **kw)
    w64 = dequantized64(w, scales, biases, group_size, bits)
    return mx.matmul(x.astype(mx.float64), oriented(w64, transpose))


def exact_gather_qmm(x, w, scales, biases=None, lhs_indices=None, rhs_indices=None, transpose=True, group_size=None,
                     bits=None, mode="affine", global_scale=None, *, sorted_indices=False, **kw):
    if not affine(mode, biases, kw) or global_scale is not None:
        return mlx_gather_qmm(x, w, scales, biases, lhs_indices, rhs_indices, transpose, group_size, bits, mode,
                              global_scale, sorted_indices=sorted_indices, **kw)
    if rhs_indices is not None and w.ndim == 3:
        # Only the experts the indices pick are dequantized (8 of 128 for one token).
        used = sorted(set(rhs_indices.reshape(-1).tolist()))
        position = mx.zeros((w.shape[0],), dtype=mx.int32)
        position[mx.array(used)] = mx.arange(len(used), dtype=mx.int32)
        picked = mx.array(used)
        w, scales, biases, rhs_indices = w[picked], scales[picked], biases[picked], position[rhs_indices]
    if numpy_here():
        # One expert's matrix at a time (all of a layer's at once is gigabytes in float64).
        def weight(e):
            e = np.unravel_index(e, w.shape[:-2])
            return oriented_numpy(dequantized_numpy(w[e], scales[e], biases[e], group_size, bits), transpose)
    else:
        w64 = oriented(dequantized64(w, scales, biases, group_size, bits), transpose)
        wb = w64.reshape(-1, *w64.shape[-2:])

        def weight(e):
            return wb[e]

    return gathered_products(x.astype(mx.float64), w.shape[:-2], weight, lhs_indices, rhs_indices)


def oriented_numpy(w64, transpose):
    return np.swapaxes(w64, -1, -2) if transpose else w64


def exact_quantize(w, *args, **kw):
    """A quantization is a choice (each value's integer), not arithmetic, and MLX quantizes
    no float64: made in float32 (FLOAT32: while references run, mx.float32 names float64)."""
    return mlx_quantize(w.astype(FLOAT32) if w.dtype == mx.float64 else w, *args, **kw)


def exact_dequantize(w, scales, biases=None, group_size=None, bits=None, mode="affine", global_scale=None, dtype=None,
                     **kw):
    if not affine(mode, biases, kw) or global_scale is not None:
        return mlx_dequantize(w, scales, biases, group_size, bits, mode, global_scale, dtype, **kw)
    return dequantized64(w, scales, biases, group_size, bits)


def gathered_products(x, batch, weight, lhs_indices, rhs_indices):
    """gather_mm's products (MLX's takes no float64): for each index pair, a matrix of x's
    batch times one of the matrices `weight(e)` gives (e: the flat index into their batch
    shape `batch`). The pairs are grouped by matrix, so that each is made once and
    multiplies all its rows in one product (an MoE layer's experts); in numpy's BLAS
    where numpy_here (weight then gives numpy arrays)."""
    m, k = x.shape[-2], x.shape[-1]
    xb = x.reshape(-1, m, k)
    lhs = lhs_indices if lhs_indices is not None else mx.arange(xb.shape[0]).reshape(x.shape[:-2])
    rhs = rhs_indices if rhs_indices is not None else mx.arange(math.prod(batch)).reshape(batch)
    lhs, rhs = mx.broadcast_arrays(lhs, rhs)
    shape, lhs, rhs = lhs.shape, lhs.reshape(-1), rhs.reshape(-1)
    order = MLX_ARGSORT(rhs)  # not fn's: the reference replays fn's own calls only
    experts = rhs[order].tolist()
    rows = xb[lhs[order]].reshape(-1, k)  # each pair's m rows, by expert
    numpy = numpy_here()
    rows = np.asarray(rows) if numpy else rows
    parts, start = [], 0
    while start < len(experts):
        end = start
        while end < len(experts) and experts[end] == experts[start]:
            end += 1
        some, matrix = rows[start * m : end * m], weight(experts[start])
        parts.append(numpy_products(some, matrix) if numpy else mx.matmul(some, matrix))
        start = end
    grouped = from_numpy64(np.concatenate(parts)) if numpy else mx.concatenate(parts)
    n = grouped.shape[-1]
    return grouped.reshape(-1, m, n)[MLX_ARGSORT(order)].reshape(*shape, m, n)


def numpy_products(a, b):
    """a @ b of float64 numpy arrays: products64, or MLX's where that leaves it to MLX."""
    out = products64(a, b)
    return out if out is not None else np.asarray(mlx_matmul(from_numpy64(a), from_numpy64(b)))


def attention64(q, k, v, *, scale, mask=None, sinks=None, **kw):
    """mx.fast.scaled_dot_product_attention by its definition, for the float64 references:
    in numpy head by head where every value is finite (attention_numpy), else in MLX with
    its two products through mx.matmul (numpy's BLAS there) instead of MLX's float64
    matmul. Grouped heads are not repeated; a "causal" mask aligns the last query with the
    last key; a boolean mask keeps where True."""
    if sinks is not None or kw or q.ndim != 4 or (isinstance(mask, str) and mask != "causal"):
        return mlx_attention(q, k, v, scale=scale, mask=mask, sinks=sinks, **kw)
    if np is not None and not State.transforming:
        out = attention_numpy(q, k, v, scale, mask)
        if out is not None:
            return out
    b, heads, length, _ = q.shape
    groups = k.shape[1]
    q = (q * scale).reshape(b, groups, heads // groups, length, -1)
    k, v = mx.expand_dims(k, 2), mx.expand_dims(v, 2)
    scores = mx.matmul(q, mx.swapaxes(k, -1, -2))
    if isinstance(mask, str):
        keys = k.shape[-2]
        mask = mx.arange(keys - length, keys)[:, None] >= mx.arange(keys)[None]
    if mask is not None:
        if mask.ndim >= 3:
            per_head = mask.shape[-3] != 1
            mask = mx.unflatten(mask, -3, (groups, heads // groups)) if per_head else mx.expand_dims(mask, -3)
        if mask.dtype == mx.bool_:
            scores = mx.where(mask, scores, mx.array(mx.finfo(scores.dtype).min, dtype=scores.dtype))
        else:
            scores = scores + mask
    out = mx.matmul(mx.softmax(scores, axis=-1, precise=True), v)
    return out.reshape(b, heads, length, -1)


def attention_numpy(q, k, v, scale, mask):
    """attention64 of finite float64 inputs in numpy, one (batch, head) at a time, so that
    the scores of one head are the largest array and the softmax is numpy's vectorised exp
    (MLX's float64 softmax is scalar, on one core); None where an input is not finite."""
    b, heads, length, _ = q.shape
    groups, keys = k.shape[1], k.shape[2]
    q, k, v = (np.asarray(x.astype(mx.float64)) for x in (q, k, v))
    if isinstance(mask, str):
        mask = np.arange(keys - length, keys)[:, None] >= np.arange(keys)[None]
    elif mask is not None:
        mask = np.asarray(mask if mask.dtype == mx.bool_ else mask.astype(mx.float64))
        mask = np.broadcast_to(mask, (b, heads, length, keys))
    if not all(np.isfinite(x).all() for x in (q, k, v)) or (mask is not None and not np.isfinite(mask).all()):
        return None
    lowest = np.finfo(np.float64).min
    out = np.empty((b, heads, length, v.shape[-1]))
    for i in range(b):
        for h in range(heads):
            g = h // (heads // groups)
            s = (q[i, h] * scale) @ k[i, g].T
            m = mask if mask is None or mask.ndim == 2 else mask[i, h]
            if m is not None:
                s = np.where(m, s, lowest) if m.dtype == np.bool_ else s + m
            s -= s.max(-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(-1, keepdims=True)
            out[i, h] = s @ v[i, g]
    return from_numpy64(out)


def einsum64(subscripts, *operands, **kw):
    """mx.einsum for the float64 references, where every operand is a float64 array: a
    two-operand einsum as one batched product (einsum_product), others by numpy's einsum
    (which contracts through BLAS) where every value is finite; MLX's otherwise."""
    arrays = all(isinstance(o, mx.array) and o.dtype == mx.float64 for o in operands)
    if np is None or State.transforming or kw or not arrays:
        return mlx_einsum(subscripts, *operands, **kw)
    ns = [np.asarray(o) for o in operands]
    out = einsum_product(subscripts, *ns) if len(ns) == 2 else None
    if out is None and all(np.isfinite(n).all() for n in ns):
        out = np.einsum(subscripts, *ns, optimize=True)
    return mlx_einsum(subscripts, *operands) if out is None else from_numpy64(out)


def einsum_product(subscripts, a, b):
    """A two-operand einsum as products64 of a batched matrix product: indices in one
    operand only and not in the output are summed first; then the indices both share and
    the output keeps are the batch, those both share and it drops are contracted. None
    where the einsum is not of that form (an ellipsis, an index twice in one operand,
    shapes that differ on a shared index)."""
    spec = subscripts.replace(" ", "")
    if "." in spec or "->" not in spec or spec.count(",") != 1:
        return None
    (sa, sb), out = spec.split("->")[0].split(","), spec.split("->")[1]
    if any(len(set(x)) != len(x) for x in (sa, sb, out)) or set(out) - set(sa) - set(sb):
        return None
    a, sa = summed_out(a, sa, sb + out)
    b, sb = summed_out(b, sb, sa + out)
    size = {**dict(zip(sa, a.shape)), **dict(zip(sb, b.shape))}
    if any(a.shape[sa.index(c)] != b.shape[sb.index(c)] for c in set(sa) & set(sb)):
        return None
    batch = [c for c in out if c in sa and c in sb]
    left, right = [c for c in sa if c not in sb], [c for c in sb if c not in sa]
    summed = [c for c in sa if c in sb and c not in out]
    dims = [size[c] for c in batch]
    x = a.transpose(places(batch + left + summed, sa)).reshape(dims + [count(left, size), count(summed, size)])
    y = b.transpose(places(batch + summed + right, sb)).reshape(dims + [count(summed, size), count(right, size)])
    product = products64(x, y)
    if product is None:
        return None
    order = batch + left + right
    return product.reshape([size[c] for c in order]).transpose(places(out, order))


def places(indices, spec):
    return [spec.index(c) for c in indices]


def count(indices, size):
    return math.prod(size[c] for c in indices)


def summed_out(x, spec, kept):
    """x with the axes of `spec` that `kept` does not name summed; the remaining spec."""
    axes = tuple(i for i, c in enumerate(spec) if c not in kept)
    return (x.sum(axis=axes) if axes else x), "".join(c for c in spec if c in kept)


# MLX's CPU computes float64 exp, sqrt, sin, softmax and the mx.fast norms no better than
# float32 (measured on 0.32.4: softmax off by 1.5e-5 of its largest value, exp by 9e-7,
# sqrt rounded to float32), so the references take them from numpy (see numpy64).
def rms_norm64(x, weight, eps):
    out = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return out if weight is None else out * weight


def layer_norm64(x, weight, bias, eps):
    centred = x - np.mean(x, axis=-1, keepdims=True)
    out = centred / np.sqrt(np.mean(centred * centred, axis=-1, keepdims=True) + eps)
    out = out if weight is None else out * weight
    return out if bias is None else out + bias


def rope64(x, dims, *, traditional, base, scale, offset, freqs=None):
    """mx.fast.rope: the first `dims` features of each position p = offset + t rotated in
    pairs (adjacent ones if traditional, else the two halves) by p * scale * base^(-2i/dims),
    or by p * scale / freqs[i]. None for an offset per batch row (MLX's then)."""
    if np.size(offset) != 1:
        return None
    offset = float(np.reshape(offset, ()))
    half = dims // 2
    inverse = 1.0 / freqs if freqs is not None else base ** (-np.arange(half) * 2.0 / dims)
    angle = (offset + np.arange(x.shape[-2]))[:, None] * scale * inverse[None]
    cos, sin = np.cos(angle), np.sin(angle)
    a, b = (x[..., 0:dims:2], x[..., 1:dims:2]) if traditional else (x[..., :half], x[..., half:dims])
    ra, rb = a * cos - b * sin, a * sin + b * cos
    out = x.copy()
    if traditional:
        out[..., 0:dims:2], out[..., 1:dims:2] = ra, rb
    else:
        out[..., :half], out[..., half:dims] = ra, rb
    return out


def softmax64(a, axis=None, precise=False):
    axis = tuple(axis) if isinstance(axis, list) else axis
    shifted = a - np.max(a, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def logsumexp64(a, axis=None, keepdims=False):
    axis = tuple(axis) if isinstance(axis, list) else axis
    top = np.max(a, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(a - top), axis=axis, keepdims=True)) + top
    return out if keepdims else np.squeeze(out, axis=axis)


def untransformed(fun):
    """`fun`, counted in State.transforming while it runs."""

    def inside(*args, **kwargs):
        State.transforming += 1
        try:
            return fun(*args, **kwargs)
        finally:
            State.transforming -= 1

    return inside


def transformation(mlx_transform):
    """`mlx_transform` (mx.grad, mx.vmap, ...) for the references, with the function it
    transforms run inside State.transforming."""

    def transform(fun, *args, **kwargs):
        return mlx_transform(untransformed(fun), *args, **kwargs)

    return transform


TRANSFORMATIONS = ("grad", "value_and_grad", "vjp", "jvp", "vmap", "checkpoint")


def numpy64_table():
    """(owner, name, numpy definition) of what the references compute in numpy."""
    unary = {"exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1, "sin": np.sin, "cos": np.cos,
             "tanh": np.tanh, "sqrt": np.sqrt, "rsqrt": lambda x: 1.0 / np.sqrt(x),
             "sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * x))}
    table = [(mx, name, f) for name, f in unary.items()]
    table += [(mx, "softmax", softmax64), (mx, "logsumexp", logsumexp64)]
    return table + [(mx.fast, "rms_norm", rms_norm64), (mx.fast, "layer_norm", layer_norm64), (mx.fast, "rope", rope64)]


def numpy64(mlx_op, numpy_op):
    """`mlx_op` computed by `numpy_op` where every array it is given is a finite float64
    array (a tuple axis, None, numbers and flags pass as they are) and `numpy_op` does not
    decline (None); MLX otherwise, NaN and Inf included, so that the references place them
    as MLX does."""

    def op(*args, **kwargs):
        values = list(args) + list(kwargs.values())
        arrays = [v for v in values if isinstance(v, mx.array)]
        if State.transforming or "stream" in kwargs or not arrays or any(a.dtype != mx.float64 for a in arrays):
            return mlx_op(*args, **kwargs)
        plain = [np.asarray(a) for a in arrays]
        if not all(np.isfinite(a).all() for a in plain):
            return mlx_op(*args, **kwargs)
        as_numpy = iter(plain)
        given = [next(as_numpy) if isinstance(v, mx.array) else v for v in args]
        named = {k: next(as_numpy) if isinstance(v, mx.array) else v for k, v in kwargs.items()}
        with np.errstate(all="ignore"):
            out = numpy_op(*given, **named)
        return mlx_op(*args, **kwargs) if out is None else from_numpy64(out)

    return op


mlx_quantized_matmul, mlx_gather_qmm, mlx_dequantize = mx.quantized_matmul, mx.gather_qmm, mx.dequantize
mlx_quantize = mx.quantize
MLX_ARGSORT = mx.argsort
mlx_attention, mlx_einsum, mlx_matmul = mx.fast.scaled_dot_product_attention, mx.einsum, mx.matmul
FLOAT32 = mx.float32


def reference_patches(on_cpu=True):
    """(owner, name, replacement) of everything reference_graph swaps while fn runs. The
    names are looked up here, at call time, so that a replaced function is picked up.
    numpy's BLAS takes the products only on the CPU; a GPU has its own float64 products."""
    g = globals()
    floats = [(mx, name, mx.float64) for name in NARROW_FLOATS]
    products = [(mx, "matmul", blas_matmul(mx.matmul)), (mx.array, "__matmul__", blas_matmul(mx.array.__matmul__))]
    quantized = [(mx, name, g[f"exact_{name}"]) for name in ("quantized_matmul", "gather_qmm", "dequantize", "quantize")]
    attention = [(mx.fast, "scaled_dot_product_attention", g["attention64"])]
    einsum = [(mx, "einsum", g["einsum64"])]
    exact = [(owner, name, numpy64(getattr(owner, name), f)) for owner, name, f in numpy64_table()] if np else []
    transforms = [(mx, name, transformation(getattr(mx, name))) for name in TRANSFORMATIONS]
    return floats + quantized + attention + (products + einsum + exact + transforms if on_cpu else [])


# One float32 rounding, relative: the size of the input perturbation `sensitivity` measures.
ROUNDING = 2.0**-24


def perturbed(v, index):
    """A float64 input moved by one float32 rounding, up or down at random, per element."""
    if not (isinstance(v, mx.array) and mx.issubdtype(v.dtype, mx.floating)) or v.size == 0:
        return v
    sign = mx.where(mx.random.bernoulli(shape=v.shape, key=mx.random.key(1000 + index)), 1.0, -1.0)
    return v * (1.0 + ROUNDING * sign.astype(mx.float64))


# What fn computes with a rounding in float32 (see `rounding`): mx's arithmetic, as functions
# and as array methods, the array operators and mx.fast's fused operations. Layout changes,
# gathers, comparisons, max and min are exact.
ROUNDING_FUNCTIONS = (
    "add", "subtract", "multiply", "divide", "power", "square", "sqrt", "rsqrt", "reciprocal", "exp", "expm1",
    "log", "log1p", "log2", "log10", "sin", "cos", "tan", "sinh", "cosh", "tanh", "arcsin", "arccos", "arctan",
    "arctan2", "arcsinh", "arccosh", "arctanh", "sigmoid", "erf", "erfinv", "softmax", "logsumexp", "logaddexp",
    "sum", "mean", "var", "std", "prod", "cumsum", "cumprod", "logcumsumexp", "matmul", "addmm", "einsum",
    "tensordot", "inner", "outer", "gather_mm", "gather_qmm", "quantized_matmul", "dequantize",
)
ROUNDING_OPERATORS = (
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
    "__pow__", "__rpow__", "__matmul__", "__iadd__", "__isub__", "__imul__", "__itruediv__",
)
ROUNDING_FAST = ("rms_norm", "layer_norm", "rope", "scaled_dot_product_attention")


def rounding_patches():
    """(owner, name, replacement) of what `spread` swaps besides reference_patches, each
    wrapping what is there when it is made (a reference patch included)."""
    named = [(mx, n) for n in ROUNDING_FUNCTIONS] + [(mx.array, n) for n in ROUNDING_FUNCTIONS + ROUNDING_OPERATORS]
    named += [(mx.fast, n) for n in ROUNDING_FAST]
    return [(owner, name, rounding(getattr(owner, name))) for owner, name in named if hasattr(owner, name)]


def rounding(f):
    """f whose float64 results each move by up to half a float32 ulp, uniformly at random
    (what rounding to nearest does), where float32 cannot hold them: fn's own program,
    rounding otherwise than fn does."""

    def rounded(*args, **kwargs):
        out = f(*args, **kwargs)
        if State.rounding is None or not isinstance(out, mx.array) or out.dtype != mx.float64:
            return out
        key, State.rounding = State.rounding, None  # the rounding's own arithmetic is exact
        try:
            u = mx.random.uniform(-0.5, 0.5, out.shape, key=mx.random.key(key)).astype(mx.float64)
            held = mx.equal(out.astype(FLOAT32).astype(mx.float64), out)
            ulp = mx.power(2.0, mx.floor(mx.log2(mx.abs(out))) - 23.0)
            return mx.where(held, out, out + u * ulp)
        finally:
            State.rounding = key + 1

    return rounded


def reference_graph(size, seed, variant, stream, perturb=False, rounded=False):
    """fn on float64 copies of the case's inputs, on `stream`, unevaluated but (on the CPU)
    for its matrix products (see blas_matmul); None where fn cannot run in float64. While
    fn runs, mx.float32/float16/bfloat16 name float64, so that tables fn builds itself
    (`mx.arange(..., dtype=mx.float32)`) are float64 too, quantized weights are
    dequantized exactly (exact_*), attention is its definition (attention64), and on the
    CPU matmuls and einsum take their products from BLAS (blas_matmul, einsum64) and
    exp, softmax, the norms and RoPE their values from numpy (numpy64): see
    reference_patches. Compiled functions run uncompiled, through the same patches. With
    `perturb`, each float input is moved by one float32 rounding (see `perturbed`); with
    `rounded`, each result fn computes (see `rounding`)."""
    args, kwargs = inputs_for(size, seed, variant)
    choices = discrete_choices(size, args, kwargs)
    patches = reference_patches(stream == mx.cpu) + following(choices)
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, replacement in patches:
            setattr(owner, name, replacement)
        if rounded:
            more = rounding_patches()
            saved += [(owner, name, getattr(owner, name)) for owner, name, _ in more]
            for owner, name, replacement in more:
                setattr(owner, name, replacement)
            State.rounding = 1
        mx.disable_compile()  # compiled parts of fn run as Python, through the patches
        with mx.stream(stream):
            args = [upcast(a) for a in args]
            kwargs = {k: upcast(v) for k, v in kwargs.items()}
            if perturb:
                args = [perturbed(a, i) for i, a in enumerate(args)]
                kwargs = {k: perturbed(v, len(args) + i) for i, (k, v) in enumerate(kwargs.items())}
            outs, _ = outputs_of(State.fn(*args, **kwargs), "fn")
            return [o.astype(mx.float64) if mx.issubdtype(o.dtype, mx.floating) else o for o in outs]
    except Exception:
        return None
    finally:
        State.rounding = None
        mx.enable_compile()
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


# fn's discrete choices (which experts a router picks, ...): the float64 reference makes
# the ones fn made in its own precision (see discrete_choices).
DISCRETE = ("argpartition", "argsort", "argmax", "argmin")
# Their primitives in a trace: fn's references replay choices only where its trace has one.
DISCRETE_PRIMITIVES = ("ArgPartition", "ArgSort", "ArgReduce")


def discrete_choices(size, args, kwargs):
    """The results of fn's DISCRETE calls, in order, when fn runs in its own precision on
    the case's inputs (under handles of their own: fn may update its arguments) on the
    default device, where the original is verified (a GPU may round, and so choose,
    otherwise than the CPU). Where two values are nearer than fn's rounding, as a router's
    8th and 9th expert often are, float64 chooses otherwise than any float32 or bfloat16
    program, and its reference is another function (a MoE block's error against it was
    128%, which let any candidate through). The reference makes fn's choices instead; a
    candidate that chooses otherwise is rejected, even where only its rounding made it (the
    safe side). None where fn fails (the reference then makes float64's choices, as the
    references did before), and, without running it, where fn made none at this size."""
    if size in State.choiceless:
        return None
    args = [own_handle(a) for a in args]
    kwargs = {k: own_handle(v) for k, v in kwargs.items()}
    made, saved = [], {name: getattr(mx, name) for name in DISCRETE}

    def recording(op):
        def record(*a, **k):
            made.append(op(*a, **k))
            return made[-1]

        return record

    try:
        for name, op in saved.items():
            setattr(mx, name, recording(op))
        mx.disable_compile()
        with mx.stream(mx.default_device()):
            outputs_of(State.fn(*args, **kwargs), "fn")
            mx.eval(made)
        if not made:
            State.choiceless.add(size)
        return made
    except Exception:
        return None
    finally:
        mx.enable_compile()
        for name, op in saved.items():
            setattr(mx, name, op)


def own_handle(v):
    """An array's data under a handle of its own (no copy): updating it in place, as
    `a[i] = x` does, leaves the caller's handle as it was."""
    return v.reshape(v.shape) if isinstance(v, mx.array) else v


def following(choices):
    """Patches (see reference_patches) under which the DISCRETE calls return fn's own
    choices (`choices`), call by call, while each has the call's shape and dtype; from the
    first that does not (the runs went apart), and past the last, the calls' own results."""
    if not choices:
        return []
    left, apart = iter(choices), [False]

    def follow(op):
        def chosen(*a, **k):
            own = op(*a, **k)
            made = None if apart[0] else next(left, None)
            apart[0] = made is None or made.shape != own.shape or made.dtype != own.dtype
            return own if apart[0] else made

        return chosen

    return [(mx, name, follow(getattr(mx, name))) for name in DISCRETE]


def reference_path(key):
    """The folder a case's reference is kept in: one .npy file per output (a float output
    compared on a GPU as its two halves, o{k}.hi.npy and o{k}.lo.npy; see Target), or a
    file `none` where fn cannot run in float64. .npy, not .npz: MLX reads a gigabyte of
    .npz in ~9 s on this project's CPU, of .npy in 0.5 s."""
    size, seed, variant = key
    return os.path.join(State.reference_dir, f"{size}-{seed}-{variant}")


def kept_form(o):
    """A float64 reference output in the form it is compared in: on a GPU its Target
    (split here, so that pool workers split in parallel), else the array itself."""
    return target_of(o) if on_gpu() and mx.issubdtype(o.dtype, mx.inexact) else o


def float64_of(r):
    """A kept reference output as one float64 (or integer) array."""
    if not isinstance(r, Target):
        return r
    if r.lo is None:
        return r.hi
    with mx.stream(mx.cpu):  # float64 arithmetic: the GPU backends have none
        return cpu64(r.hi) + cpu64(r.lo)


def keep_reference(key, outs):
    """Keeps a case's evaluated reference (None: fn cannot run in float64) for the run,
    in memory and in the reference folder; whether the folder has it now."""
    kept = None if outs is None else [kept_form(o) for o in outs]
    State.references[key] = kept
    return State.reference_dir is not None and save_reference(reference_path(key), kept)


def save_reference(path, kept):
    """Writes a reference's folder whole, then renames it into place; False where it could
    not be written (a full disk: the reference is then kept in memory only)."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        os.makedirs(tmp, exist_ok=True)
        if kept is None:
            open(os.path.join(tmp, "none"), "w").close()
        with mx.stream(mx.cpu):
            for k, o in enumerate(kept or []):
                if isinstance(o, Target):
                    mx.save(os.path.join(tmp, f"o{k}.hi.npy"), o.hi)
                    mx.save(os.path.join(tmp, f"o{k}.lo.npy"), o.lo)
                else:
                    mx.save(os.path.join(tmp, f"o{k}.npy"), o)
        os.rename(tmp, path)
        return True
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return os.path.isdir(path)  # another worker's came first


def kept_reference(key):
    """A case's reference as kept in memory or in the reference folder; False where it is in neither."""
    if key in State.references:
        return State.references[key]
    if not has_reference(key):
        return False
    path = reference_path(key)
    with mx.stream(mx.cpu):
        outs = None if os.path.exists(os.path.join(path, "none")) else list(kept_outputs(path))
    State.references[key] = outs
    return outs


def kept_outputs(path):
    """A reference folder's outputs, in order."""
    for k in itertools.count():
        one, hi = os.path.join(path, f"o{k}.npy"), os.path.join(path, f"o{k}.hi.npy")
        if os.path.exists(one):
            yield mx.load(one)
        elif os.path.exists(hi):
            yield Target(mx.load(hi), mx.load(os.path.join(path, f"o{k}.lo.npy")))
        else:
            return


def evaluated_reference(size, seed, variant, stream, perturb=False, rounded=False):
    """reference_graph evaluated; None where fn cannot run in float64."""
    outs = reference_graph(size, seed, variant, stream, perturb, rounded)
    try:
        if outs is not None:
            mx.eval(outs)
    except Exception:
        return None
    return outs


def reference(size, seed, variant):
    """fn in float64 for one case (see reference_graph) on the reference stream, kept for the run."""
    key = (size, seed, variant)
    kept = kept_reference(key)
    if kept is not False:
        return kept
    t0 = time.perf_counter()
    outs = evaluated_reference(size, seed, variant, State.reference_stream)
    count_reference_seconds(size, t0)
    keep_reference(key, outs)
    return outs


# How far (relative L2, per output) the GPU's float64 reference may be from the CPU's:
# two float64 computations in different orders agree to ~1e-15; anything computed in
# float32 on the way is off by ~1e-7.
DEVICES_AGREE = 1e-11


def devices_differ(gpu, cpu):
    """Why two float64 references of one case differ, or None where they agree: the same
    NaN/Inf places and, elsewhere, within DEVICES_AGREE."""
    if (gpu is None) != (cpu is None) or (cpu is not None and len(gpu) != len(cpu)):
        return "one device cannot run fn in float64"
    with mx.stream(mx.cpu):
        for k, (g, c) in enumerate(zip(gpu or [], cpu or [])):
            g = mx.array(g)
            if g.shape != c.shape or g.dtype != c.dtype:
                return f"output {k}: {g.shape} {g.dtype} on the GPU, {c.shape} {c.dtype} on the CPU"
            if not mx.issubdtype(c.dtype, mx.inexact):
                if not mx.array_equal(g, c).item():
                    return f"output {k} differs"
                continue
            apart = finite_apart(c, g)
            if apart is None:
                return f"output {k}: NaN/Inf at other places"
            if apart > DEVICES_AGREE:
                return f"output {k}: relative difference {apart:.1e}"
    return None


def finite_apart(x, y):
    """y's relative L2 distance from x where x is finite (0.0 where the difference is below
    1e-30), or None where their NaN/Inf places differ. Both float64, on the CPU stream."""
    finite = mx.isfinite(x)
    if not mx.array_equal(finite, mx.isfinite(y)).item():
        return None
    d = scaled_norms(mx.where(finite, y - x, 0.0))[0]
    return 0.0 if d <= 1e-30 else d / scaled_norms(mx.where(finite, x, 0.0))[0]


def cmd_reference_device(req):
    """Where the float64 references run: on the GPU where it computes the small size's
    first case as the CPU does (the CPU's then is that case's reference), else on the CPU."""
    if not on_gpu():
        return {"device": "cpu", "why": "no GPU"}
    key = ("small", 0, "normal")
    cpu = kept_reference(key)
    if cpu is False:
        t0 = time.perf_counter()
        cpu = evaluated_reference(*key, mx.cpu)
        count_reference_seconds("small", t0)
        keep_reference(key, cpu)
    try:
        gpu = reference_graph(*key, mx.gpu)
        if gpu is not None:
            mx.eval(gpu)
        why = devices_differ(gpu, None if cpu is None else [float64_of(c) for c in cpu])
    except Exception as e:
        why = f"{type(e).__name__}: {e}"
    if why is not None:
        return {"device": "cpu", "why": f"float64 on the GPU: {why}"}
    State.reference_stream = mx.gpu
    return {"device": "gpu", "why": "float64 on the GPU agrees with the CPU on the small size's first case"}


def cmd_sensitivity(req):
    """How far fn's exact outputs move when its inputs move by one float32 rounding: per
    output, the relative L2 change of the float64 reference (where both are finite) over
    ROUNDING; None for integer outputs and where fn cannot run in float64. An input that
    makes this far larger than on normal inputs is ill-conditioned: rounding order alone
    decides a float32 program's digits there."""
    return {"outputs": varied_reference(req, State.sensitivities, {"perturb": True}, moved_by)}


def cmd_spread(req):
    """fn's rounding spread on one case: per output, (relative L2, max) error against the
    reference, measured as a candidate's is, of fn's own program rounding each result at
    random (see `rounding`): how far another float32 rounding order of fn takes it. None
    for integer outputs and where fn cannot run in float64."""
    return {"outputs": varied_reference(req, State.spreads, {"rounded": True}, spread_of)}


def varied_reference(req, kept, how, figure):
    """Per output of the request's case, `figure(varied, reference)` of fn's float64 run
    varied `how` (reference_graph's keywords) against its reference, kept per case; None
    where fn cannot run in float64."""
    size, (seed, variant) = req["size"], req["case"]
    key = (size, seed, variant)
    if key not in kept:
        base = reference(size, seed, variant)
        varied = evaluated_reference(size, seed, variant, State.reference_stream, **how)
        if base is None or varied is None:
            kept[key] = [None] * len(base or [])
        else:
            kept[key] = [figure(v, float64_of(b)) for v, b in zip(varied, base)]
    return kept[key]


def spread_of(rounded, base):
    """rounded's error figures against base (float64, on the CPU: the GPU backends have no
    float64) where both are finite; None for an integer output."""
    if not mx.issubdtype(base.dtype, mx.inexact):
        return None
    with mx.stream(mx.cpu):
        rounded, base = cpu64(rounded), cpu64(base)
        both = mx.logical_and(mx.isfinite(rounded), mx.isfinite(base))
        return list(error_figures(rounded, Target(base), None if bool(mx.all(both).item()) else both))


def moved_by(moved, base):
    """moved's relative L2 distance from base, over ROUNDING, where both are finite."""
    if not mx.issubdtype(base.dtype, mx.inexact):
        return None
    with mx.stream(mx.cpu):
        moved, base = cpu64(moved), cpu64(base)
        finite = mx.logical_and(mx.isfinite(moved), mx.isfinite(base))
        d = scaled_norms(mx.where(finite, moved - base, 0.0))[0]
        n = scaled_norms(mx.where(finite, base, 0.0))[0]
    return 0.0 if d <= 1e-30 else d / n / ROUNDING


def count_reference_seconds(size, since):
    """Adds the time since `since` to `size`'s reference seconds; returns the total."""
    State.reference_seconds[size] = State.reference_seconds.get(size, 0.0) + time.perf_counter() - since
    return State.reference_seconds[size]


def cmd_prepare(req):
    """Computes and keeps the float64 references of these cases, one after another on the
    reference stream (a pool worker takes one case per request); a case whose evaluation
    fails is not kept, and is tried again when it is needed. `threads` (where given) is
    how many threads numpy's BLAS takes meanwhile."""
    size = req["size"]
    threads = req.get("threads")
    if req.get("choices") is False:
        State.choiceless.add(size)
    limits = threadpool_limits(limits=threads, user_api="blas") if threads and threadpool_limits else None
    with limits or contextlib.nullcontext():
        prepared = prepare_cases(size, req["cases"])
    seconds = State.reference_seconds.get(size, 0.0)
    return {"prepared": prepared, "reference_seconds": seconds, "peak_gib": peak_gib()}


def prepare_cases(size, cases):
    """cmd_prepare's work: how many of `cases` have their reference now. What is written
    to the folder is not kept in memory: the verifying worker reads it from there."""
    prepared = 0
    for s, v in cases:
        key = (size, s, v)
        if not has_reference(key):
            t0 = time.perf_counter()
            try:
                outs = reference_graph(size, s, v, State.reference_stream)
                if outs is not None:
                    mx.eval(outs)
                if keep_reference(key, outs):
                    State.references.pop(key)
            except Exception:
                continue
            finally:
                count_reference_seconds(size, t0)
        prepared += 1
    return prepared


def has_reference(key):
    """Whether a case's reference is kept, in memory or in the folder (without reading it)."""
    return key in State.references or (State.reference_dir is not None and os.path.isdir(reference_path(key)))


def peak_gib():
    """The worker's peak resident memory so far, in GiB (0 where the platform does not say)."""
    try:
        import resource
    except ImportError:
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (2**30 if sys.platform == "darwin" else 2**20)


def original(size, seed, variant):
    """fn's outputs for a case, kept; where fn varies (cmd_varies), those of a second call
    too, in State.second_originals."""
    key = (size, seed, variant)
    if key not in State.originals:
        args, kwargs = inputs_for(size, seed, variant)
        first = call_original_updating(key, args, kwargs)
        if State.varies:
            args, kwargs = inputs_for(size, seed, variant)
            State.second_originals[key] = call_original(args, kwargs)[0]
        State.originals[key] = first  # counted with its second call's outputs (Kept.beside)
    return State.originals[key]


def call_original_updating(key, args, kwargs):
    """fn's outputs for a case, keeping the arguments the call updated in State.updates."""
    arrays = array_args(args, kwargs)
    before = snapshots(arrays)
    outs = call_original(args, kwargs)[0]
    State.updates[key] = [(i, a) for i, ((_, a), b) in enumerate(zip(arrays, before)) if not same_bits(a, b)]
    return outs


def snapshots(arrays):
    """The arrays as they are now, without copying: a view keeps the values an in-place
    write (which replaces the array's data) leaves behind."""
    return [a.reshape(a.shape) for _, a in arrays]


def original_updates(size, seed, variant):
    """The arguments fn updates in place for a case (see call_original_updating)."""
    key = (size, seed, variant)
    if key not in State.updates:
        args, kwargs = inputs_for(size, seed, variant)
        call_original_updating(key, args, kwargs)
    return dict(State.updates[key])


def array_args(args, kwargs):
    """fn's array arguments, named, positional ones first."""
    named = list(zip(param_names(len(args)), args)) + list(kwargs.items())
    return [(n, a) for n, a in named if isinstance(a, mx.array)]


def arguments_check(arrays, before, ys, orig, key):
    """Why the candidate's call left fn's array arguments otherwise than fn's does, if it did:
    an argument fn leaves alone must stay bit-identical; one fn updates in place must hold
    fn's update bit for bit, or, where fn also returns its update as an output, that output
    of the candidate (judged like any output). A compiled program updating a buffer in
    place updates compile's copy, not the caller's."""
    updates = original_updates(*key)
    for i, ((name, a), b) in enumerate(zip(arrays, before)):
        if i not in updates:
            if not same_bits(a, b):
                return f"the candidate changed argument {name} in place; fn leaves it as it was"
            continue
        if same_bits(a, updates[i]):
            continue
        returned = [k for k, o in enumerate(orig) if same_bits(o, updates[i])]
        if not any(same_bits(ys[k], a) for k in returned):
            return f"the candidate did not update argument {name} in place as fn does"
    return None


def forget_second_original(key):
    """fn's outputs for a case can be had again by calling fn: its second call's go with
    them (original() makes both again)."""
    State.second_originals.pop(key, None)
    return True


def cmd_varies(req):
    """fn differs in rounding from call to call (see rounding_apart): from now on each case's
    original error is the worse of two calls, so that a candidate as far from float64 as
    either call of the original is as good as the original."""
    State.varies = True
    State.originals.clear()
    State.original_figures.clear()
    State.identical.clear()
    return {}


def cpu64(a):
    with mx.stream(mx.cpu):
        return a.astype(mx.float64)


def on_gpu():
    return mx.default_device().type == mx.gpu


class Target:
    """What a float output is judged against (fn in float64, or fn itself when fn cannot
    run in float64), kept in the form the device compares fast: on a GPU two float32
    arrays whose sum is the float64 value (hi + lo), on the CPU the float64 array (hi; lo
    None). See target_of."""

    def __init__(self, hi, lo=None, finite=None):
        self.hi, self.lo = hi, lo
        mx.eval([a for a in (self.hi, self.lo) if a is not None])
        self.finite = all_finite(self.hi) if finite is None else finite
        self.whole_norms = None

    def diff(self, y):
        d = y.astype(self.hi.dtype) - self.hi
        return d if self.lo is None else d - self.lo

    def norms(self, mask):
        """L2 norm and max |t| (each at least 1e-30) where mask holds (None: everywhere)."""
        if mask is not None:
            return scaled_norms(mx.where(mask, self.hi, 0.0))
        if self.whole_norms is None:
            self.whole_norms = scaled_norms(self.hi)
        return self.whole_norms


def target_of(t):
    """t's Target."""
    t = cpu64(t)
    if not on_gpu():
        return Target(t)
    if np is not None and t.size >= SPLIT_CHUNK:
        return Target(*split64(t))
    with mx.stream(mx.cpu):
        hi = t.astype(mx.float32)
        return Target(hi, (t - hi.astype(mx.float64)).astype(mx.float32))


# Elements per piece of split64 (a piece's values stay in the cores' caches).
SPLIT_CHUNK = 1 << 20


def split64(t):
    """A float64 array (on the CPU) as float32 halves hi + lo, and whether every value is
    finite: in numpy, piece by piece on every core. MLX's CPU splits on one core through
    float64 temporaries, 6.7 s for a 1 GiB reference on this project's CPU against 0.8 s
    (naive_gqa_einsum's 11 cases of 2 GiB outputs at large kept the H100 machine's pool
    busy for 78 s; on this CPU the split was 6.1 s of a typical case's 7.5 s)."""
    mx.eval(t)
    src = np.asarray(t).reshape(-1)
    hi, lo = mlx_backed(t.shape, mx.float32), mlx_backed(t.shape, mx.float32)
    flat_hi, flat_lo = hi.reshape(-1), lo.reshape(-1)

    def piece(start):
        part = slice(start, start + SPLIT_CHUNK)
        h = flat_hi[part]
        with np.errstate(all="ignore"):
            h[...] = src[part]
            np.subtract(src[part], h, out=flat_lo[part], casting="unsafe")
        return bool(np.isfinite(h).all())

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with ThreadPoolExecutor(cores or 1) as pool:
        finite = all(list(pool.map(piece, range(0, src.size, SPLIT_CHUNK))))
    return mlx_of(hi), mlx_of(lo), finite


def mlx_of(a):
    """The MLX array an mlx_backed view `a` shows, or a copy of `a` where it shows none."""
    backed = mlx_backing(a)
    return backed if backed is not None else mx.array(a)


def scaled_norms(a):
    """(L2 norm, max |a|), each at least 1e-30; squares are taken of a / max |a|, so that
    large values do not overflow float32."""
    m = mx.max(mx.abs(a)).item() if a.size else 0.0
    if m == 0.0:
        return 1e-30, 1e-30
    return max(m * math.sqrt(mx.sum(mx.square(a / m)).item()), 1e-30), m


def target(key, t):
    """The Target of case output `key`, made once (t itself where it is one)."""
    if isinstance(t, Target):
        return t
    if key is None:
        return target_of(t)
    if key not in State.targets:
        State.targets[key] = target_of(t)
    return State.targets[key]


def error_figures(y, t, mask):
    """Relative L2 and max-abs (over max |t|) error of y against t where mask holds."""
    d = t.diff(y)
    d = d if mask is None else mx.where(mask, d, 0.0)
    dn, dmax = scaled_norms(d) if d.size else (1e-30, 1e-30)
    if dmax == 1e-30:
        return 0.0, 0.0
    rn, rmax = t.norms(mask)
    return dn / rn, dmax / rmax


def all_finite(a):
    return bool(mx.all(mx.isfinite(a)).item())


def nonfinite_ok(y, o, variant, t=None, lenient=False):
    """NaN/+Inf/-Inf where the original has them.
    normal inputs: the same kind at exactly the same places.
    non-finite inputs: non-finite at exactly the same places; NaN and Inf may trade
    (re-associating inf * a + inf * b turns NaN into Inf, and both are poisoned).
    finite edge inputs (zeros, large, tiny...): the candidate may be finite where the
    original overflowed; with the exact value (Target t, fn in float64), anything where
    the original is non-finite (either the exact value is not finite in the output dtype
    either, or no digit of the original's is right there), and non-finite where the exact
    value is beyond the output dtype's range (IEEE rounds it to Inf; the original's finite
    value there is no nearer to it), but not elsewhere where the original is finite.
    `lenient` (an ill-conditioned case, which the judge decides): also where the original's
    finite value has no correct digit (see no_digit), and, where the original itself lost
    places to overflow (orig_lost), at up to LOST_FACTOR times as many other places: which
    intermediates leave float32's range on such an input is the rounding order's choice
    (FlashQLA's hand port, all-negative inputs on an H100: 1 place of 4,194,304 more)."""
    if variant == "nonfinite":
        return bool(mx.all(mx.equal(mx.isfinite(y), mx.isfinite(o))).item())
    same = mx.logical_and(
        mx.equal(mx.isnan(y), mx.isnan(o)),
        mx.logical_and(mx.equal(mx.isposinf(y), mx.isposinf(o)), mx.equal(mx.isneginf(y), mx.isneginf(o))),
    )
    if variant != "normal":
        same = mx.logical_or(same, mx.logical_and(mx.isfinite(y), mx.logical_not(mx.isfinite(o))))
        if t is not None:
            same = mx.logical_or(same, mx.logical_or(beyond_range(t, y.dtype), mx.logical_not(mx.isfinite(o))))
        if t is not None and lenient:
            same = mx.logical_or(same, no_digit(o, t))
            return bool(mx.all(same).item()) or holding(mx.logical_not(same)) <= LOST_FACTOR * holding(lost(o, t))
    return bool(mx.all(same).item())


# On an input where the original lost places to overflow, how many times as many other
# places the candidate may lose (the float rule's 2x, in places).
LOST_FACTOR = 2


def holding(mask):
    """How many places `mask` is true at."""
    return int(mx.sum(mask).item())


def nonfinite_places(y, o, t):
    """How the NaN/Inf places of y and of the original o differ, counted: where y alone is
    non-finite (and of those, where the exact value, Target t, is finite), where o alone
    is, and where both are but of other kinds."""
    fy, fo = mx.isfinite(y), mx.isfinite(o)
    kinds = [mx.isnan(a) * 1 + mx.isposinf(a) * 2 + mx.isneginf(a) * 3 for a in (y, o)]
    y_only = mx.logical_and(mx.logical_not(fy), fo)
    exact = "" if t is None else f", {holding(mx.logical_and(y_only, mx.isfinite(t.hi)))} of them finite in float64"
    both = mx.logical_and(mx.logical_not(mx.logical_or(fy, fo)), mx.not_equal(*kinds))
    return (f"the candidate's alone: {holding(y_only)}{exact}; the original's alone: "
            f"{holding(mx.logical_and(fy, mx.logical_not(fo)))}; other kinds: {holding(both)}; of {y.size} places")


# How far off (against the largest finite exact value) no_digit's original must be: not
# a rounding residue at an exact zero.
NO_DIGIT_SHARE = 1e-3


def no_digit(o, t):
    """Where the original's finite value is off the exact one (Target t) by more than the
    exact value's size (no correct digit: a system that overflowed float32 midway) and by
    more than NO_DIGIT_SHARE of the largest finite exact value."""
    hi, o = t.hi, o.astype(t.hi.dtype)
    off = mx.abs(o - hi)
    largest = mx.max(mx.where(mx.isfinite(hi), mx.abs(hi), 0.0))
    return mx.logical_and(mx.isfinite(o), mx.logical_and(off > mx.abs(hi), off > NO_DIGIT_SHARE * largest))


def lost(o, t):
    """Where the original o is non-finite and Target t's exact value is a finite number of
    o's dtype: it overflowed midway there, and no digit of it is right."""
    return mx.logical_and(mx.logical_not(mx.isfinite(o)), mx.logical_not(beyond_range(t, o.dtype)))


def orig_lost(o, t):
    """Whether the original o lost any place (see lost)."""
    return bool(mx.any(lost(o, t)).item())


def beyond_range(t, dtype):
    """Where Target t's exact value is NaN, infinite or beyond `dtype`'s largest finite value."""
    hi = t.hi
    return mx.logical_or(mx.logical_not(mx.isfinite(hi)), mx.abs(hi) > float(mx.finfo(dtype).max))


def fixed_ratio(y, o, atol, rtol, mask, acc):
    """max(|y - o| / (atol + rtol |o|)) where mask holds, in dtype acc."""
    y, o = y.astype(acc), o.astype(acc)
    r = mx.abs(y - o) / (atol + rtol * mx.abs(o))
    r = r if mask is None else mx.where(mask, r, 0.0)
    return mx.max(r).item() if r.size else 0.0


def float_figures(y, o, ref, variant, fixed, key=None):
    """Error figures of y (and of the original o) against ref, or against o without one."""
    t = target(key, ref) if ref is not None else target_of(o)
    if all_finite(y) and all_finite(o) and t.finite:
        mask, fig = None, {"nonfinite_ok": True}
    else:
        mask = mx.logical_and(mx.isfinite(y), mx.logical_and(mx.isfinite(o), mx.isfinite(t.hi)))
        fig = {"nonfinite_ok": nonfinite_ok(y, o, variant, t if ref is not None else None)}
        if not fig["nonfinite_ok"] and ref is not None and variant not in ("normal", "nonfinite"):
            fig["nonfinite_ok_ill"] = nonfinite_ok(y, o, variant, t, lenient=True)
        if not fig["nonfinite_ok"]:
            fig["nonfinite_places"] = nonfinite_places(y, o, t if ref is not None else None)
        if ref is not None and variant not in ("normal", "nonfinite"):
            fig["orig_lost"] = orig_lost(o, t)
    if ref is None:
        fig["orig_l2"], fig["orig_max"] = 0.0, 0.0
    elif mask is None:
        if key not in State.original_figures:
            State.original_figures[key] = error_figures(o, t, None)
        fig["orig_l2"], fig["orig_max"] = State.original_figures[key]
    else:
        fig["orig_l2"], fig["orig_max"] = error_figures(o, t, mask)
    if ref is not None:
        second_call(fig, key, t, mask)
    fig["cand_l2"], fig["cand_max"] = error_figures(y, t, mask)
    fig["reference"] = "float64" if ref is not None else "original"
    if fixed:
        fig["fixed_ratio"] = fixed_ratio(y, o, fixed["atol"], fixed["rtol"], mask, t.hi.dtype)
    return fig


def second_call(fig, key, t, mask):
    """Where fn varies (cmd_varies), the original's error figures become the worse of its
    two calls' (key: size, seed, variant and output number)."""
    second = State.second_originals.get(key[:3]) if isinstance(key, tuple) and len(key) == 4 else None
    if second is None or (mask is None and not all_finite(second[key[3]])):
        return
    l2, largest = error_figures(second[key[3]], t, mask)
    fig["orig_l2"], fig["orig_max"] = max(fig["orig_l2"], l2), max(fig["orig_max"], largest)


def identical_figures(o, ref, variant, fixed, key):
    """Figures of a candidate bit-identical to the original: the original's own, computed
    once per case (the masks and errors of identical arrays are identical)."""
    if key not in State.identical:
        State.identical[key] = float_figures(o, o, ref, variant, fixed, key[0])
    return dict(State.identical[key])


def compare_output(y, o, ref, variant, fixed=None, key=None):
    fig = {
        "shape_ok": list(y.shape) == list(o.shape),
        "dtype_ok": y.dtype == o.dtype,
        "exact": not mx.issubdtype(o.dtype, mx.inexact),
    }
    if not (fig["shape_ok"] and fig["dtype_ok"]):
        return fig
    fig["bit_identical"] = same_bits(y, o)
    if fig["exact"]:
        fig["nonfinite_ok"] = True
    elif fig["bit_identical"]:
        fig.update(identical_figures(o, ref, variant, fixed, (key, json.dumps(fixed, sort_keys=True))))
    else:
        fig.update(float_figures(y, o, ref, variant, fixed, key))
    return fig


def cmd_verify(req):
    """Figures for each (seed, input variant) case."""
    f = program(req["program"])
    cases = req["cases"]
    out = []
    for seed, variant in cases:
        args, kwargs = inputs_for(req["size"], seed, variant)
        orig = original(req["size"], seed, variant)
        ref = reference(req["size"], seed, variant)
        arrays = array_args(args, kwargs)
        before = snapshots(arrays)
        ys, _ = call(f, args, kwargs, "the candidate")
        if len(ys) != len(orig):
            raise CandidateError(f"the candidate returned {len(ys)} outputs; fn returns {len(orig)}")
        key = (req["size"], seed, variant)
        moved = arguments_check(arrays, before, ys, orig, key)
        refs = ref or [None] * len(orig)
        figs = [compare_output(y, o, r, variant, req.get("fixed"), key + (k,)) for k, (y, o, r) in enumerate(zip(ys, orig, refs))]
        out.append({"seed": seed, "variant": variant, "outputs": figs, "arguments": moved})
    return {"seeds": out, "reference_seconds": State.reference_seconds.get(req["size"], 0.0)}


def cmd_warm(req):
    """One call of a program at `size` (seed 0, normal inputs) for the kernels a GPU backend
    compiles at first use. This worker keeps them in a cache folder of its own
    (MLX_PTX_CACHE_DIR, set by the run), then publishes them into the folder every other
    process reads: MLX writes its cache files in place, and a process loading one beside the
    writer could read half of it."""
    seeded = seed_kernels()
    f = program(req["program"])
    args, kwargs = inputs_for(req["size"], 0, "normal")
    t0 = time.perf_counter()
    call(f, args, kwargs, "the candidate")
    return {"seconds": time.perf_counter() - t0, "published": publish_kernels(), "seeded": seeded}


def shared_kernel_cache():
    """Where MLX's CUDA backend keeps compiled kernels for every process (its default)."""
    return os.environ.get("SUPEROPT_SHARED_KERNEL_CACHE") or os.path.join(
        tempfile.gettempdir(), "mlx", mx.__version__, "ptx")


def kernel_caches():
    """This worker's own kernel cache folder (None where it has none apart from the shared
    one) and the shared one."""
    own, shared = os.environ.get("MLX_PTX_CACHE_DIR"), shared_kernel_cache()
    return (None if not own or os.path.abspath(own) == os.path.abspath(shared) else own), shared


KERNEL_FILES = (".cu", ".txt", ".ptx")  # what MLX's CUDA backend writes per kernel, in place
SETTLED_S = 2.0  # a kernel whose files have not changed for this long is written whole


def seed_kernels(now=None):
    """Copies into this worker's own cache folder each kernel of the shared folder it lacks,
    so that it does not compile again what another process did: only kernels whose files
    are all there and settled (none changed in the last SETTLED_S seconds: MLX writes them
    in place), each file by an atomic rename, the .ptx last; how many kernels."""
    own, shared = kernel_caches()
    if not own or not os.path.isdir(shared):
        return 0
    now = time.time() if now is None else now
    kernels = {}
    for d, _, names in os.walk(shared):
        for n in names:
            stem, ext = os.path.splitext(n)
            if ext in KERNEL_FILES:
                kernels.setdefault(os.path.relpath(os.path.join(d, stem), shared), set()).add(ext)
    seeded = 0
    for stem, exts in sorted(kernels.items()):
        if len(exts) < len(KERNEL_FILES) or os.path.exists(os.path.join(own, stem + ".ptx")):
            continue
        try:
            if now - max(os.path.getmtime(os.path.join(shared, stem + e)) for e in KERNEL_FILES) < SETTLED_S:
                continue
            for e in KERNEL_FILES:
                copy_atomically(os.path.join(shared, stem + e), os.path.join(own, stem + e), unchanged=True)
        except OSError:
            continue
        seeded += 1
    return seeded


def copy_atomically(src, dest, unchanged=False):
    """Copies src to dest by an atomic rename; with `unchanged`, raises OSError (copying
    nothing) where src changed while it was read (a writer rewriting it in place)."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    part = f"{dest}.{os.getpid()}.part"
    try:
        before = os.stat(src)
        shutil.copyfile(src, part)
        after = os.stat(src)
        if unchanged and (
            (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns)
            or os.path.getsize(part) != before.st_size
        ):
            raise OSError(f"{src} changed while it was copied")
        os.replace(part, dest)
    finally:
        if os.path.exists(part):
            os.remove(part)


def publish_kernels():
    """Copies this worker's cached kernels the shared folder lacks into it, each file by an
    atomic rename, a kernel's .ptx (what readers look for) after its other files; how many
    files it added."""
    own, shared = kernel_caches()
    if not own or not os.path.isdir(own):
        return 0
    files = [os.path.relpath(os.path.join(d, n), own) for d, _, names in os.walk(own) for n in names]
    added = 0
    for rel in sorted(files, key=lambda r: (r.endswith(".ptx"), r)):
        dest = os.path.join(shared, rel)
        if os.path.exists(os.path.splitext(dest)[0] + ".ptx"):
            continue
        copy_atomically(os.path.join(own, rel), dest)
        added += 1
    return added


# ---------------------------------------------------------------- timing


# Outputs a device-time sample builds ahead of its clock, at most (a KV cache block returns buffers).
AHEAD_BYTES = 1 << 30


def time_block(f, args, kwargs, iters):
    """Seconds per call over `iters` calls queued back to back (as a model's layers run):
    the device is not waited for between calls, only at the end. Where the harness says
    DEVICE_TIME, the device's part only (device_block)."""
    if State.device_time:
        return device_block(f, args, kwargs, iters)
    t0 = time.perf_counter()
    for _ in range(iters):
        mx.async_eval(f(*args, **kwargs))
    mx.synchronize()
    return (time.perf_counter() - t0) / iters


def device_block(f, args, kwargs, iters):
    """Seconds per call of the device's part of `iters` calls: the calls' graphs are built
    before the clock (in chunks whose outputs hold at most AHEAD_BYTES), and each chunk is
    evaluated with the clock running. In a model whose device is the bottleneck, Python's
    work on one layer overlaps the device's on the layers before it: only this part costs."""
    first, _ = outputs_of(f(*args, **kwargs), "the program")
    mx.eval(first)
    chunk = max(1, min(iters, AHEAD_BYTES // max(1, sum(o.nbytes for o in first))))
    total, done = 0.0, 0
    while done < iters:
        n = min(chunk, iters - done)
        outs = [f(*args, **kwargs) for _ in range(n)]
        t0 = time.perf_counter()
        mx.eval(outs)
        mx.synchronize()
        total += time.perf_counter() - t0
        done += n
        del outs
    return total / iters


def cmd_time(req):
    """Times each program `rounds` times, interleaved, `iters[pid]` calls per sample."""
    args, kwargs = make_inputs(req["size"], req["seed"])
    fs = [(pid, program(pid)) for pid in req["programs"]]
    for pid, f in fs:
        try:
            mx.eval(f(*args, **kwargs))
        except Exception as e:
            raise CandidateError(f"{pid} raised {type(e).__name__} while timing: {e}")
    samples = {pid: [] for pid, _ in fs}
    for r in range(req["rounds"]):
        order = fs if r % 2 == 0 else fs[::-1]
        for pid, f in order:
            samples[pid].append(time_block(f, args, kwargs, req["iters"][pid]))
    return {"samples": samples}


def cmd_dispatch(req):
    """Whether a by-size module's `optimized` calls the original fn at `size` and returns
    its outputs as they are (`delegates`: then it computes there what fn does, with no
    reference needed), and the seconds per call it spends choosing there: timed with
    `_original` giving a function that returns the original's outputs at once (the best
    of 5 samples of 1000 calls)."""
    f = program(req["program"])
    args, kwargs = make_inputs(req["size"], 0)
    result = State.fn(*args, **kwargs)
    module = f.__globals__
    if "_original" not in module:
        raise CandidateError(f"{req['program']} calls no original fn")
    saved = module["_original"]
    module["_original"] = lambda: (lambda *a, **k: result)
    try:
        delegates = f(*args, **kwargs) is result
        seconds = best_seconds(lambda: f(*args, **kwargs), 5, 1000) if delegates else 0.0
    finally:
        module["_original"] = saved
    return {"seconds": seconds, "delegates": delegates}


def cmd_same_outputs(req):
    """Whether `program` returns at `size`, on the first seed's inputs, what `part` returns
    there, bit for bit: a by-size candidate runs there a part verified there."""
    args, kwargs = make_inputs(req["size"], 0)
    got, _ = call(program(req["program"]), args, kwargs, req["program"])
    want, _ = call(program(req["part"]), args, kwargs, req["part"])
    return {"same": all_same_bits(got, want)}


# ---------------------------------------------------------------- device


def cmd_hello(req):
    info = {}
    try:
        info = mx.device_info()
    except Exception:
        pass
    dev = mx.default_device()
    name = info.get("device_name") or info.get("name") or platform.processor() or platform.machine()
    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "mlx": mx.__version__,
        "device": f"{'gpu' if dev.type == mx.gpu else 'cpu'}: {name}",
        "backend": "cuda" if mx.cuda.is_available() else ("metal" if mx.metal.is_available() else "cpu"),
    }


def best_seconds(f, reps, iters=None):
    """The fastest of `reps` timings of `iters` queued calls of f(), per call (after a
    warm-up); by default enough calls to last SAMPLE_SECONDS, so that starting and
    waiting for the device add about 1% whatever f costs."""
    mx.eval(f())
    if iters is None:
        iters = min(10_000, math.ceil(SAMPLE_SECONDS / max(time_block(f, (), {}, 1), 1e-7)))
    return min(time_block(f, (), {}, iters) for _ in range(reps))


def cuda_copy_seconds(x):
    """A plain 16-byte-per-thread copy through mx.fast.cuda_kernel (MLX's own ops may not
    reach the memory's bandwidth); infinity where there is no CUDA."""
    if not mx.cuda.is_available():
        return float("inf")
    source = """
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < PACKS) reinterpret_cast<float4*>(out)[i] = reinterpret_cast<const float4*>(x)[i];
"""
    try:
        k = mx.fast.cuda_kernel(name="superopt_copy", input_names=["x"], output_names=["out"], source=source)
        packs = x.size // 4
        copy = lambda: k(inputs=[x], template=[("PACKS", packs)], grid=(packs, 1, 1), threadgroup=(256, 1, 1),
                         output_shapes=[x.shape], output_dtypes=[x.dtype])[0]
        return best_seconds(copy, 5)
    except Exception:
        return float("inf")


def copy_seconds(x):
    """Seconds per copy of x (read once, written once): the faster of MLX's `x + 1.0` and
    a plain copy kernel."""
    return min(best_seconds(lambda: x + 1.0, 5), cuda_copy_seconds(x))


def cmd_calibrate(req):
    """The device's copy bandwidth (bytes read + written per second) and the fixed time of
    one kernel beside it (a line through copies of two sizes), float32 matmul rate
    (flop/s) and the cost of one small primitive (s): the cost model's rates and the
    roofline's ceilings. On a GPU both copies are many times its cache (an H200's L2 is
    60 MB: a 64 MB small copy gained from it, which flattened the line and gave 3.1 TB/s
    for a 4.3 TB/s card); a CPU gets smaller ones."""
    gpu = mx.default_device() == mx.gpu
    n = 1 << (28 if gpu else 24)
    m = 4096 if gpu else 1024
    x, quarter = mx.random.normal((n,)), mx.random.normal((n // 4,))
    a, b = mx.random.normal((m, m)), mx.random.normal((m, m))
    tiny = mx.zeros((8,))
    mx.eval(x, quarter, a, b, tiny)
    big, small = copy_seconds(x), copy_seconds(quarter)
    # The line through both; where caches make the small copy the faster per byte (a
    # CPU), the large copy's rate alone and no fixed time.
    moved = 2 * 4 * n
    fixed = (4 * small - big) / 3
    bytes_per_s = 0.75 * moved / (big - small) if fixed > 0 else moved / big
    fixed = max(0.0, fixed)
    matmul = best_seconds(lambda: a @ b, 5)
    launch = best_seconds(lambda: tiny + 1.0, 50, 1)
    return {"bytes_per_s": bytes_per_s, "flops_per_s": 2 * m**3 / matmul, "launch_s": launch, "fixed_s": fixed,
            "matmul_tf32": matmul_tf32()}


def matmul_tf32():
    """Whether float32 matmuls on the default device round to TF32: a 256 x 256 product's
    relative error against float64 (float32: ~1e-7; TF32's 10-bit mantissas: ~3e-4)."""
    a, b = mx.random.normal((256, 256)), mx.random.normal((256, 256))
    got = a @ b
    with mx.stream(mx.cpu):
        exact = a.astype(mx.float64) @ b.astype(mx.float64)
        return (finite_apart(exact, got.astype(mx.float64)) or 0.0) > 1e-5


# ---------------------------------------------------------------- generated kernels


def dtype_name(d):
    return str(d).split(".")[-1]


def cmd_kernel_launches(req):
    """The launches of generated kernels one call of a candidate makes at `size`, read from
    its graph unevaluated: a launch's shapes are known before it runs, and evaluating the
    whole program (its first call compiles every MLX kernel in it) took longer than tuning
    itself on a GPU. Only the arrays a quantized launch is tuned on are evaluated."""
    f = program(req["program"])
    g = f.__globals__
    args, kwargs = make_inputs(req["size"], 0)
    g["_LAUNCHES"] = []
    State.launch_arrays.clear()  # only this size's are tuned next
    mx.disable_compile()  # a compiled program's launches would record tracers, not arrays
    try:
        f(*args, **kwargs)
        launches = g["_LAUNCHES"]
        mx.eval([a for _, _, _, *arrays in launches for a in (arrays[0] if arrays else [])])
    except Exception as e:
        raise CandidateError(f"{req['program']} raised {type(e).__name__}: {e}")
    finally:
        mx.enable_compile()
        g["_LAUNCHES"] = None
    out = []
    for index, shape, ins, *arrays in launches:
        item = {"kernel": index, "shape": list(shape), "inputs": [{"shape": list(s), "dtype": dtype_name(d)} for s, d in ins]}
        if arrays:  # a quantized launch: tuning calls it again on these (indices, packed weights)
            State.launch_arrays[(req["program"], index, tuple(shape))] = arrays[0]
        if item not in out:
            out.append(item)
    return {"launches": out}


def cmd_tune(req):
    """Seconds per call of kernel `_k<kernel>` of a candidate under each configuration: a
    row kernel's parameters on random inputs of the launch's shapes, a quantized product's
    layout (warps, rows, cols) on the arrays its launch was recorded with; None where a
    configuration fails, or where it was not tried: none starts after req["seconds"] (each
    may compile a kernel)."""
    launch = program(req["program"]).__globals__[f"_k{req['kernel']}"]
    shape = tuple(req["shape"])
    recorded = State.launch_arrays.get((req["program"], req["kernel"], shape))
    if recorded is None and any("warps" in c for c in req["configs"]):
        return {"seconds": [None] * len(req["configs"]), "tried": 0}  # not recorded here: untuned
    if recorded is None:
        ins = [mx.random.normal(tuple(i["shape"])).astype(getattr(mx, i["dtype"])) for i in req["inputs"]]
        mx.eval(ins)
    until = time.perf_counter() + req["seconds"]
    seconds = []
    for c in req["configs"]:
        if time.perf_counter() > until:
            break
        if "warps" in c:  # a quantized product's layout
            layout = {"warps": c["warps"], "rows_per_warp": c["rows"], "cols": c["cols"]}
            run = lambda: launch(*recorded, **layout)  # noqa: E731
        else:
            p = (c["vec"], c["threads"], c["rows_per_block"], c["unroll"])
            run = lambda: launch(shape, *ins, params=p)  # noqa: E731
        try:
            seconds.append(best_seconds(run, 3))
        except Exception:
            seconds.append(None)
    tried = len(seconds)
    return {"seconds": seconds + [None] * (len(req["configs"]) - tried), "tried": tried}


def cmd_phew(req):
    """phew's rewrite of fn, written to req["path"] as a module defining `optimized`,
    when the phew package (phew-mlx) is importable here."""
    try:
        import phew
    except ImportError:
        return {"available": False}
    try:
        version = importlib.metadata.version("phew-mlx")
    except importlib.metadata.PackageNotFoundError:
        version = getattr(phew, "__version__", "?")
    try:
        result = phew.Optimizer(State.fn, State.factory).run()
    except Exception as e:
        return {"available": True, "version": version, "error": f"phew failed: {type(e).__name__}: {e}"}
    with open(req["path"], "w") as f:
        f.write(result.output_source)
    return {"available": True, "version": version, "rules": [str(r) for r in result.applied_rules]}


COMMANDS = {
    "hello": cmd_hello,
    "warm": cmd_warm,
    "phew": cmd_phew,
    "calibrate": cmd_calibrate,
    "prepare": cmd_prepare,
    "kernel_launches": cmd_kernel_launches,
    "tune": cmd_tune,
    "load": cmd_load,
    "trace": cmd_trace,
    "save_constants": cmd_save_constants,
    "load_constants": cmd_load_constants,
    "program": cmd_program,
    "verify": cmd_verify,
    "time": cmd_time,
    "reference_device": cmd_reference_device,
    "varies": cmd_varies,
    "sensitivity": cmd_sensitivity,
    "spread": cmd_spread,
    "dispatch": cmd_dispatch,
    "same_outputs": cmd_same_outputs,
    "model_blocks": lambda req: model_commands()["model_blocks"](req),
    "model_proof": lambda req: model_commands()["model_proof"](req),
}


def model_commands():
    """`superopt model`'s commands, from superopt_model.py beside this file (it needs mlx-lm)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also under PYTHONSAFEPATH
    try:
        import superopt_model
    finally:
        sys.path.pop(0)
    return superopt_model.COMMANDS


def finite_json(v):
    """v with each infinite float as the largest finite one of its sign: JSON has no
    infinity (an error figure of inf: the run takes the largest float as no bound at all)."""
    if isinstance(v, float) and math.isinf(v):
        return math.copysign(sys.float_info.max, v)
    if isinstance(v, dict):
        return {k: finite_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [finite_json(x) for x in v]
    return v


def main():
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever the harness prints goes to stderr, not the protocol
    sys.stdout = sys.stderr
    for line in sys.stdin:
        req = json.loads(line)
        try:
            reply = {"ok": True, "result": COMMANDS[req["cmd"]](req)}
        except HarnessError as e:
            reply = {"ok": False, "kind": "harness", "message": str(e)}
        except CandidateError as e:
            reply = {"ok": False, "kind": "candidate", "message": str(e)}
        except Untraceable as e:
            reply = {"ok": False, "kind": "unsupported", "message": str(e)}
        except Exception as e:
            reply = {"ok": False, "kind": "internal", "message": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
        try:
            text = json.dumps(reply, allow_nan=False)
        except ValueError:
            text = json.dumps(finite_json(reply))
        protocol.write(text + "\n")
    # Stdin closed: leave without MLX's teardown, which now and then aborts on a loaded machine.
    protocol.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
