//! The float64 references, on real MLX (CPU): matrix products through numpy's BLAS
//! (`blas_matmul`, `products64`) as exact as MLX's own float64 matmul, with IEEE's NaN and
//! Inf; attention, einsum, exp, softmax, the norms and RoPE by their float64 definitions
//! (MLX's CPU computes those to float32 accuracy); MLX's functions restored after.

mod common;

const CHECK: &str = r#"
import sys
import mlx.core as mx
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
mlx_matmul = mx.matmul
mm = w["blas_matmul"](mlx_matmul)

def rel(a, b):
    return (mx.abs(a - b).max() / mx.abs(b).max()).item()

with mx.stream(mx.cpu):
    x = mx.random.normal((3, 64, 200)).astype(mx.float64)
    weight = mx.random.normal((200, 96))  # float32, as a module's weight stays
    exact = mlx_matmul(x, weight.astype(mx.float64))
    y = mm(x, weight)
    # float64, and float64-exact: a product rounded through float32 is off by ~1e-7.
    assert y.dtype == mx.float64, y.dtype
    assert rel(y, exact) < 1e-13, rel(y, exact)
    # Batched operands broadcast as MLX's do.
    b = mx.random.normal((1, 200, 8)).astype(mx.float64)
    assert rel(mm(x, b), mlx_matmul(x, b)) < 1e-13
    # NaN and Inf where MLX's float64 matmul puts them, the rest as exact.
    bad = mx.array(x)
    bad[0, 0, 0] = float("nan")
    bad[1, 2, 3] = float("inf")
    got, want = mm(bad, weight), mlx_matmul(bad, weight)
    assert mx.array_equal(mx.isnan(got), mx.isnan(want)).item() and mx.array_equal(got == mx.inf, want == mx.inf).item()
    assert rel(mx.where(mx.isfinite(want), got, 0), mx.where(mx.isfinite(want), want, 0)) < 1e-13
    # Not float64 (a float32 program's own products): MLX's.
    a32 = mx.random.normal((64, 200))
    assert mm(a32, weight).dtype == mx.float32 and w["same_bits"](mm(a32, weight), mlx_matmul(a32, weight))

# reference_graph patches mx.matmul and @ only while fn runs, even when fn raises.
w["State"].fn = lambda a: a @ mx.ones((4, 4))
w["make_inputs"] = lambda size, seed: ([mx.ones((2, 4))], {})
outs = w["reference_graph"]("small", 0, "normal", mx.cpu)
assert outs[0].dtype == mx.float64 and outs[0].tolist() == [[4.0] * 4] * 2
assert mx.matmul is mlx_matmul and "blas" not in repr(mx.array.__matmul__)
def boom(a):
    raise RuntimeError("no float64 here")
w["State"].fn = boom
assert w["reference_graph"]("small", 0, "normal", mx.cpu) is None
assert mx.matmul is mlx_matmul and "blas" not in repr(mx.array.__matmul__)
print("ok")
"#;

#[test]
fn float64_references_take_their_products_from_blas() {
    common::run_check(CHECK);
}

const KEPT: &str = r#"
import sys, tempfile
import mlx.core as mx
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
State = w["State"]
State.reference_dir = tempfile.mkdtemp()
State.fn = lambda a: (a * 3.0, mx.argmax(a, axis=-1))
w["make_inputs"] = lambda size, seed: ([mx.random.normal((4, 8), key=mx.random.key(seed))], {})
first = w["reference"]("small", 1, "normal")
assert first[0].dtype == mx.float64
# A restarted worker has nothing in memory: it reads the kept reference back and
# computes nothing (reference_graph would fail now).
State.references.clear()
w["reference_graph"] = lambda *a: (_ for _ in ()).throw(RuntimeError("computed again"))
again = w["reference"]("small", 1, "normal")
assert len(again) == 2 and all(w["same_bits"](a, b) for a, b in zip(first, again))
# Kept in the form a GPU compares (hi + lo float32 halves), read back as that form.
State.references.clear()
on_gpu = w["on_gpu"]
w["on_gpu"] = lambda: True
w["keep_reference"](("small", 3, "normal"), [first[0] + 1e-9, first[1]])
w["on_gpu"] = on_gpu
State.references.clear()
split = w["reference"]("small", 3, "normal")
assert isinstance(split[0], w["Target"]) and split[0].hi.dtype == mx.float32 and split[0].lo.dtype == mx.float32
back = w["float64_of"](split[0])
assert back.dtype == mx.float64 and w["same_bits"](split[1], first[1])
assert (mx.abs(back - (first[0] + 1e-9)).max() / mx.abs(first[0]).max()).item() < 1e-14
assert w["has_reference"](("small", 3, "normal")) and not w["has_reference"](("small", 4, "normal"))
# fn that cannot run in float64 is kept as such (None), and read back as None.
State.references.clear()
w["reference_graph"] = lambda *a: None
assert w["reference"]("small", 2, "normal") is None
State.references.clear()
w["reference_graph"] = lambda *a: (_ for _ in ()).throw(RuntimeError("computed again"))
assert w["reference"]("small", 2, "normal") is None
# Without a folder (an old request), references stay in memory only.
State.reference_dir = None
State.references.clear()
w["reference_graph"] = lambda *a: [mx.ones((2,), dtype=mx.float64)]
assert w["reference"]("small", 1, "normal")[0].tolist() == [1.0, 1.0]
print("ok")
"#;

#[test]
fn references_are_kept_across_a_worker_restart() {
    common::run_check(KEPT);
}

const BOUNDED: &str = r#"
import sys, tempfile
import mlx.core as mx
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
State = w["State"]
State.reference_dir = tempfile.mkdtemp()
State.fn = lambda a: a * 3.0
w["make_inputs"] = lambda size, seed: ([mx.random.normal((64, 64), key=mx.random.key(seed))], {})
State.keep_bytes = 3 * 64 * 64 * 8  # three cases' float64 outputs
first = {s: w["reference"]("small", s, "normal")[0] for s in range(6)}
assert len(State.references) == 3 and list(State.references) == [("small", s, "normal") for s in (3, 4, 5)]
# A dropped case is read back from its folder, the same bits; nothing is computed again.
w["reference_graph"] = lambda *a: (_ for _ in ()).throw(RuntimeError("computed again"))
assert all(w["same_bits"](w["reference"]("small", s, "normal")[0], first[s]) for s in range(6))
assert len(State.references) == 3
# Near miss: a reference the folder could not take is never dropped (it cannot be had again).
State.reference_dir = None
State.references.clear()
w["reference_graph"] = lambda size, seed, *a: [first[seed]]
for s in range(6):
    w["reference"]("small", s, "normal")
assert len(State.references) == 6
# fn's outputs too: a dropped case's are fn's again, the same bits.
outs = {s: w["original"]("small", s, "normal")[0] for s in range(6)}
assert len(State.originals) == 6  # float32: six fit in the bytes of three float64 cases
State.keep_bytes = 2 * 64 * 64 * 4
w["original"]("small", 6, "normal")
assert list(State.originals) == [("small", 5, "normal"), ("small", 6, "normal")]
assert all(w["same_bits"](w["original"]("small", s, "normal")[0], outs[s]) for s in range(6))
# A varying fn's second outputs count too: two cases' worth holds one case of each call.
State.originals.clear()
State.varies = True
for s in range(3):
    w["original"]("small", s, "normal")
assert list(State.originals) == [("small", 2, "normal")], list(State.originals)
assert list(State.second_originals) == [("small", 2, "normal")], list(State.second_originals)
print("ok")
"#;

#[test]
fn a_worker_keeps_a_bounded_share_of_its_cases_in_memory() {
    common::run_check(BOUNDED);
}

const QUANTIZED: &str = r#"
import sys
import mlx.core as mx
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
mlx = (mx.quantized_matmul, mx.gather_qmm, mx.dequantize)
weight = mx.random.normal((3, 96, 128), key=mx.random.key(1))
wq, scales, biases = mx.quantize(weight, group_size=64, bits=4)
scales, biases = scales.astype(mx.bfloat16), biases.astype(mx.bfloat16)
with mx.stream(mx.cpu):
    q = mx.dequantize(wq, mx.ones(scales.shape), mx.zeros(scales.shape), group_size=64, bits=4).astype(mx.float64)
    q = q.reshape(3, 96, 2, 64)
    exact = (q * scales.astype(mx.float64)[..., None] + biases.astype(mx.float64)[..., None]).reshape(3, 96, 128)
idx = mx.array([2, 0, 1, 2])

def fn(x):
    dense = mx.quantized_matmul(x, wq[1], scales[1], biases[1], transpose=True, group_size=64, bits=4)
    moe = mx.gather_qmm(x[:, None, :], wq, scales, biases, rhs_indices=idx[:, None], transpose=True, group_size=64, bits=4)
    return dense, moe, mx.dequantize(wq[0], scales[0], biases[0], group_size=64, bits=4)

w["State"].fn = fn
w["make_inputs"] = lambda size, seed: ([mx.random.normal((4, 128), key=mx.random.key(seed))], {})
outs = w["reference_graph"]("small", 0, "normal", mx.cpu)
assert outs is not None, "quantized products have a float64 reference"
mx.eval(outs)
x64 = w["make_inputs"]("small", 0)[0][0].astype(mx.float64)
with mx.stream(mx.cpu):
    want_dense = x64 @ exact[1].T
    # MLX's own gather, in float32 on the exactly dequantized weights: its semantics (index
    # broadcasting), to float32 accuracy.
    want_moe = mx.gather_mm(x64.astype(mx.float32)[:, None, :], mx.swapaxes(exact, -1, -2).astype(mx.float32),
                            rhs_indices=idx[:, None]).astype(mx.float64)
def rel(a, b):
    return (mx.abs(a - b).max() / mx.abs(b).max()).item()
assert all(o.dtype == mx.float64 for o in outs)
assert outs[1].shape == want_moe.shape, (outs[1].shape, want_moe.shape)
assert rel(outs[0], want_dense) < 1e-13 and rel(outs[1], want_moe) < 1e-6, (rel(outs[0], want_dense), rel(outs[1], want_moe))
assert rel(outs[2], exact[0]) == 0.0
# Indices that pick one expert: only it is dequantized, and the product is the same.
with mx.stream(mx.cpu):
    only = w["exact_gather_qmm"](x64[:, None, :], wq, scales, biases, rhs_indices=mx.array([[2], [2], [2], [2]]),
                                 transpose=True, group_size=64, bits=4)
    want_only = mx.gather_mm(x64.astype(mx.float32)[:, None, :], mx.swapaxes(exact, -1, -2).astype(mx.float32),
                             rhs_indices=mx.array([[2], [2], [2], [2]])).astype(mx.float64)
    assert only.shape == want_only.shape and rel(only, want_only) < 1e-6, rel(only, want_only)
    # The numpy path (one expert at a time) and the MLX one (inside a transformation) agree.
    w["State"].transforming = 1
    in_mlx = [w["exact_gather_qmm"](x64[:, None, :], wq, scales, biases, rhs_indices=idx[:, None],
                                    transpose=True, group_size=64, bits=4),
              w["dequantized64"](wq, scales, biases, 64, 4)]
    w["State"].transforming = 0
    assert rel(in_mlx[0], outs[1]) < 1e-14 and rel(in_mlx[1], exact) == 0.0, rel(in_mlx[0], outs[1])
# bf16 rounding of MLX's own dequantization is not in the reference.
assert rel(mx.dequantize(wq[0], scales[0], biases[0], group_size=64, bits=4).astype(mx.float64), exact[0]) > 0
assert (mx.quantized_matmul, mx.gather_qmm, mx.dequantize) == mlx
print("ok")
"#;

#[test]
fn quantized_products_have_exact_float64_references() {
    common::run_check(QUANTIZED);
}

const FUSED: &str = r#"
import sys
import mlx.core as mx
import numpy as np
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
mlx = (mx.fast.scaled_dot_product_attention, mx.einsum)

def by_hand(q, k, v, scale, mask):
    """Attention in float64 numpy, heads repeated (the definition)."""
    r = q.shape[1] // k.shape[1]
    q, k, v = (np.array(a) for a in (q, k, v))
    k, v = np.repeat(k, r, axis=1), np.repeat(v, r, axis=1)
    s = (q * scale) @ np.swapaxes(k, -1, -2)
    if isinstance(mask, str):
        L, S = q.shape[2], k.shape[2]
        mask = mx.arange(S - L, S)[:, None] >= mx.arange(S)[None]
    if mask is not None:
        m = np.array(mask)
        s = np.where(m, s, -np.inf) if m.dtype == np.bool_ else s + m
    e = np.exp(s - s.max(-1, keepdims=True))
    return mx.array(e / e.sum(-1, keepdims=True) @ v, dtype=mx.float64)

keys = mx.random.split(mx.random.key(0), 4)
q = mx.random.normal((2, 8, 5, 16), key=keys[0])
k, v = mx.random.normal((2, 2, 7, 16), key=keys[1]), mx.random.normal((2, 2, 7, 16), key=keys[2])
keep = mx.random.uniform(shape=(2, 8, 5, 7), key=keys[3]) > 0.3
keep = mx.logical_or(keep, mx.arange(7)[None, None, None] == 0)  # every row keeps a key
masks = [None, "causal", keep, keep[:, :1], mx.where(keep, 0.0, -1e9)]

def fn(q, k, v):
    outs = [mx.fast.scaled_dot_product_attention(q, k, v, scale=0.25, mask=m) for m in masks]
    return outs + [mx.einsum("bhld,bhsd->bhls", q[:, :2], k)]

w["State"].fn = fn
w["make_inputs"] = lambda size, seed: ([q, k, v], {})
calls = []
for name in ("attention64", "einsum64"):
    f = w[name]
    w[name] = lambda *a, f=f, name=name, **kw: calls.append(name) or f(*a, **kw)
outs = w["reference_graph"]("small", 0, "normal", mx.cpu)
assert outs is not None
assert calls == ["attention64"] * len(masks) + ["einsum64"], calls
with mx.stream(mx.cpu):
    q64, k64, v64 = (a.astype(mx.float64) for a in (q, k, v))
    want = [by_hand(q64, k64, v64, 0.25, m.astype(mx.float64) if isinstance(m, mx.array) and m.dtype != mx.bool_ else m) for m in masks]
    want.append(mx.einsum("bhld,bhsd->bhls", q64[:, :2], k64))
    for got, expect in zip(outs, want):
        assert got.dtype == mx.float64 and got.shape == expect.shape, (got.shape, expect.shape)
        err = (mx.abs(got - expect).max() / mx.abs(expect).max()).item()
        assert err < 1e-12, err
assert (mx.fast.scaled_dot_product_attention, mx.einsum) == mlx
print("ok")
"#;

#[test]
fn attention_and_einsum_references_are_float64_by_their_definitions() {
    common::run_check(FUSED);
}

const DEVICES: &str = r#"
import sys
import mlx.core as mx
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
differ = w["devices_differ"]
with mx.stream(mx.cpu):
    c = mx.random.normal((64, 96)).astype(mx.float64) / 3.0  # not float32 values
    # Another order of the same float64 sums agrees; a detour through float32 does not.
    assert differ([c * 3.0], [c + c + c]) is None
    assert "relative difference" in differ([c.astype(mx.float32).astype(mx.float64)], [c])
    nan = mx.array(c)
    nan[3, 4] = float("nan")
    assert differ([nan], [nan]) is None and "NaN/Inf" in differ([c], [nan])
    assert differ([mx.array([1, 2])], [mx.array([1, 3])]) == "output 0 differs"
    assert differ(None, [c]) is not None and differ(None, None) is None
# Without a GPU, the references stay on the CPU.
w["State"].fn = lambda a: a * 2
w["make_inputs"] = lambda size, seed: ([mx.ones((2, 4))], {})
assert w["cmd_reference_device"]({}) == {"device": "cpu", "why": "no GPU"}
assert w["State"].reference_stream == mx.cpu
print("ok")
"#;

#[test]
fn the_gpu_computes_references_only_where_it_agrees_with_the_cpu() {
    common::run_check(DEVICES);
}

const PRODUCTS: &str = r#"
import sys
import numpy as np
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
products, einsum_product = w["products64"], w["einsum_product"]
rng = np.random.default_rng(0)

def termwise(spec, *ops):
    return np.einsum(spec, *ops, optimize=False)  # term by term: IEEE's NaN and Inf

def same(got, want):
    return got.shape == want.shape and np.allclose(got, want, rtol=1e-13, atol=1e-13, equal_nan=True)

# NaN, +-Inf and zeros (Inf * 0 is NaN) scattered over batched, broadcast operands.
fallbacks = 0
for trial in range(400):
    m, k, n = rng.integers(1, 7, 3)
    batch_a, batch_b = [((), ()), ((2,), (1,)), ((3, 1), (3, 2))][trial % 3]
    a, b = rng.normal(size=batch_a + (m, k)), rng.normal(size=batch_b + (k, n))
    for x in (a, b):
        for _ in range(rng.integers(0, 3)):
            x[tuple(rng.integers(0, d) for d in x.shape)] = rng.choice([np.nan, np.inf, -np.inf, 0.0])
    got = products(a, b)
    if got is None:
        fallbacks += 1
        continue
    assert same(got, termwise("...ik,...kj->...ij", a, b)), (a, b, got)
assert fallbacks < 300, fallbacks
# A large product with one infinity: BLAS alone would not give its NaN (Inf * 0).
a, b = rng.normal(size=(64, 300)), rng.normal(size=(300, 80))
a[5, 7], b[7, 9] = np.inf, 0.0
got = products(a, b)
assert np.isnan(got[5, 9]) and np.isinf(got[5, 10]) and np.isfinite(got[6]).all()
assert same(got, termwise("ik,kj->ij", a, b))

specs = ["bhtd,bhsd->bhts", "ij,jk->ik", "ij,jk->ki", "bij,bjk->bik", "ij,kj->", "ijk,k->ij", "ij,j->i",
         "abc,cd->adb", "ij,kl->ijkl", "ijx,jky->ki", "i,i->", "ij,ij->ij", "ij,jk"]
for spec in specs:
    inputs = spec.split("->")[0].split(",")
    dims = {c: int(rng.integers(1, 5)) for c in "".join(inputs)}
    for nonfinite in (False, True):
        ops = [rng.normal(size=[dims[c] for c in x]) for x in inputs]
        if nonfinite:
            ops[0].flat[0], ops[1].flat[-1] = np.nan, np.inf
        got = einsum_product(spec, *ops)
        if "->" not in spec:
            assert got is None, spec  # implicit output: numpy's einsum
            continue
        assert (nonfinite and got is None) or same(got, termwise(spec, *ops)), (spec, nonfinite, got)
# Not a batched product: numpy's einsum or MLX's.
for spec, shapes in (("ii->i", [(3, 3), (3,)]), ("...ij,...jk->...ik", [(2, 3), (3, 2)]), ("ii,ij->j", [(3, 3), (3, 2)]),
                     ("ij,jk->ik", [(2, 3), (4, 2)])):
    assert einsum_product(spec, *[np.ones(s) for s in shapes]) is None, spec
print("ok")
"#;

#[test]
fn products_keep_ieee_nan_and_inf_and_einsums_become_products() {
    common::run_check(PRODUCTS);
}

const BACKED: &str = r#"
import sys
import numpy as np
import mlx.core as mx
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
products, einsum_product, from_numpy64 = w["products64"], w["einsum_product"], w["from_numpy64"]
rng = np.random.default_rng(2)
address = lambda x: np.asarray(x).ctypes.data

def check(r, shared):
    x = from_numpy64(r)
    assert x.dtype == mx.float64 and tuple(x.shape) == r.shape and np.array_equal(np.asarray(x), r)
    assert (address(x) == r.ctypes.data) == shared, (r.shape, shared)

# A product is written into MLX's memory: the MLX array is the result, not a copy of it.
r = products(rng.normal(size=(2, 5, 7)), rng.normal(size=(1, 7, 3)))
check(r, True)
check(r.reshape(10, 3), True)
check(einsum_product("bhtd,bhsd->bhts", rng.normal(size=(1, 2, 4, 3)), rng.normal(size=(1, 2, 5, 3))), True)
# Near misses, copied: a slice, another order, a copy, plain numpy, a transposed einsum.
check(r[1:], False)
check(r.swapaxes(-1, -2), False)
check(np.array(r), False)
check(rng.normal(size=(3, 4)), False)
check(einsum_product("ij,jk->ki", rng.normal(size=(3, 4)), rng.normal(size=(4, 2))), False)
print("ok")
"#;

/// A float64 product's reference is not copied into MLX (a 4.3 GB one spent 8 of its 19 s
/// in the copy), but only where the numpy array is the MLX array's memory, whole and in order.
#[test]
fn products_are_written_into_mlx_memory_not_copied() {
    common::run_check(BACKED);
}

const SPLIT: &str = r#"
import sys
import mlx.core as mx
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
w["SPLIT_CHUNK"] = 1000  # many pieces, the last one short
with mx.stream(mx.cpu):
    t = mx.random.normal((3, 4, 1001)).astype(mx.float64) * 1e3 + mx.random.normal((3, 4, 1001)).astype(mx.float64) * 1e-9
    for finite in (True, False):
        if not finite:
            flat = t.reshape(-1)
            flat[7], flat[2500], flat[9000], flat[12011] = float("nan"), float("inf"), -float("inf"), 1e300
            # -0, float32's subnormals, a value that rounds to its largest, one past it.
            flat[1], flat[999], flat[1000], flat[5000], flat[6000] = -0.0, 1e-40, -3e-45, 3.4028235e38, -1e300
            t = flat.reshape(t.shape)
        hi, lo, all_finite = w["split64"](t)
        want_hi = t.astype(mx.float32)
        want_lo = (t - want_hi.astype(mx.float64)).astype(mx.float32)
        # The bits MLX's own split gives, NaN, Inf and float32 overflow included.
        assert hi.dtype == lo.dtype == mx.float32 and hi.shape == lo.shape == t.shape
        assert w["same_bits"](hi, want_hi) and w["same_bits"](lo, want_lo), finite
        assert all_finite == finite
        if finite:
            err = mx.abs(hi.astype(mx.float64) + lo.astype(mx.float64) - t).max().item()
            assert err < 1e-9, err
print("ok")
"#;

/// On a GPU a reference is kept as float32 halves: split in numpy on every core, to the
/// bits MLX's split gives (which takes one core and float64 temporaries: 7x slower).
#[test]
fn references_split_into_float32_halves_as_mlx_splits_them() {
    common::run_check(SPLIT);
}

const NUMPY64: &str = r#"
import sys
import numpy as np
import mlx.core as mx
import mlx.nn as nn
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
rng = np.random.default_rng(1)
mlx_exp, mlx_rms_norm = mx.exp, mx.fast.rms_norm
f64 = lambda a: mx.array(a, dtype=mx.float64)
x = f64(rng.normal(size=(2, 3, 6, 16)) * 2)
weight, bias, freqs = f64(rng.normal(size=16)), f64(rng.normal(size=16)), f64(rng.uniform(1, 100, size=8))
calls = {
    "softmax": [((x,), {"axis": -1}), ((x,), {"axis": [1, 2], "precise": True}), ((x,), {})],
    "logsumexp": [((x,), {"axis": -1}), ((x,), {"axis": [0, 3], "keepdims": True}), ((x,), {})],
    "rms_norm": [((x, weight, 1e-5), {}), ((x, None, 1e-6), {})],
    "layer_norm": [((x, weight, bias, 1e-5), {}), ((x, None, None, 1e-6), {})],
    "rope": [((x, d), {"traditional": t, "base": 10000.0, "scale": s, "offset": o})
             for d in (16, 8) for t in (False, True) for s in (1.0, 0.5) for o in (0, 5, mx.array(3))]
    + [((x, 16), {"traditional": False, "base": None, "scale": 1.0, "offset": 2, "freqs": freqs})],
}
with mx.stream(mx.cpu):
    for owner, name, definition in w["numpy64_table"]():
        mlx_op = getattr(owner, name)
        op = w["numpy64"](mlx_op, definition)
        arg = mx.abs(x) + 0.1 if name in ("log", "log1p", "sqrt", "rsqrt") else x
        for args, kwargs in calls.get(name, [((arg,), {})]):
            got, theirs = op(*args, **kwargs), mlx_op(*args, **kwargs)
            # The same definition as MLX's (a wrong one is off by O(1)), to MLX's float64 accuracy.
            err = (mx.abs(got - theirs).max() / mx.abs(theirs).max()).item()
            assert got.dtype == mx.float64 and got.shape == theirs.shape and err < 1e-6, (name, kwargs, err)
        # NaN and Inf, and float32 inputs, are MLX's.
        bad = mx.array(arg)
        bad[0, 0, 0, 0], bad[1, 0, 0, 0] = float("nan"), float("inf")
        args, kwargs = calls.get(name, [((arg,), {})])[0]
        for other in (bad, arg.astype(mx.float32)):
            a = (other,) + tuple(args[1:])
            assert w["same_bits"](op(*a, **kwargs), mlx_op(*a, **kwargs)), name

# In a reference, exp, softmax and the norms are float64-exact, compiled functions
# (mlx.nn's silu is one) included; MLX's own float64 is not (the reason for numpy64).
v = rng.normal(size=(8, 64)) * 4
def fn(a):
    return nn.silu(a), mx.softmax(a, axis=-1), mx.fast.rms_norm(a, None, 1e-6)
w["State"].fn = fn
w["make_inputs"] = lambda size, seed: ([f64(v)], {})
outs = w["reference_graph"]("small", 0, "normal", mx.cpu)
e = np.exp(v - v.max(-1, keepdims=True))
exact = [v / (1 + np.exp(-v)), e / e.sum(-1, keepdims=True), v / np.sqrt((v * v).mean(-1, keepdims=True) + 1e-6)]
rel = lambda a, b: float(np.abs(np.array(a) - b).max() / np.abs(b).max())
for got, want in zip(outs, exact):
    assert rel(got, want) < 1e-14, rel(got, want)
with mx.stream(mx.cpu):
    theirs = fn(f64(v))
assert max(rel(t, e) for t, e in zip(theirs, exact)) > 1e-9, "MLX's float64 is float32-accurate"
assert mx.exp is mlx_exp and mx.fast.rms_norm is mlx_rms_norm
print("ok")
"#;

#[test]
fn transcendentals_and_fused_norms_are_float64_exact_in_references() {
    common::run_check(NUMPY64);
}

const TRANSFORMED: &str = r#"
import sys
import numpy as np
import mlx.core as mx
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
weight = mx.random.normal((6, 4), key=mx.random.key(1))
x = mx.random.normal((3, 6), key=mx.random.key(2))

def fn(a):
    grad = mx.grad(lambda y: (mx.exp(y) @ weight).sum())(a)
    rows = mx.vmap(lambda r: mx.softmax(r @ weight))(a)
    return grad, rows

w["State"].fn = fn
w["make_inputs"] = lambda size, seed: ([x], {})
outs = w["reference_graph"]("small", 0, "normal", mx.cpu)
x64, w64 = np.array(x, dtype=np.float64), np.array(weight, dtype=np.float64)
s = x64 @ w64
e = np.exp(s - s.max(-1, keepdims=True))
# Inside a transformation MLX's own float64 ops run (numpy's values would be constants to
# it: the gradient came out zero); MLX's float64 exp is float32-accurate, hence 1e-6.
for got, want in zip(outs, [np.exp(x64) * w64.sum(1)[None], e / e.sum(-1, keepdims=True)]):
    err = float(np.abs(np.array(got) - want).max() / np.abs(want).max())
    assert err < 1e-6, err
assert w["State"].transforming == 0
assert "transform" not in repr(mx.grad) and "transform" not in repr(mx.vmap)
print("ok")
"#;

#[test]
fn references_of_a_fn_that_differentiates_follow_the_transformation() {
    common::run_check(TRANSFORMED);
}

const SENSITIVITY: &str = r#"
import sys
import mlx.core as mx
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
w["make_inputs"] = lambda size, seed: ([mx.random.normal((64, 32), key=mx.random.key(seed))], {})

def moved(fn, variant):
    w["State"].fn = fn
    w["State"].sensitivities.clear()
    w["State"].references.clear()
    return w["cmd_sensitivity"]({"size": "small", "case": [0, variant]})["outputs"]

# A scaling moves its outputs as much as its inputs: one rounding.
twice = moved(lambda x: (x * 2.0, mx.argmax(x, axis=-1)), "normal")
assert 0.5 < twice[0] < 2.0 and twice[1] is None, twice
# sin(100 x) moves ~100 |x| roundings; on 1e4-scaled inputs 1e4 times more: ill-conditioned.
normal, large = moved(lambda x: mx.sin(100.0 * x), "normal")[0], moved(lambda x: mx.sin(100.0 * x), "large")[0]
assert 20 < normal < 500 and large > 1000 * normal, (normal, large)
# The same measure, taken twice, is the same (the perturbation is fixed per input).
assert moved(lambda x: mx.sin(100.0 * x), "large")[0] == large
print("ok")
"#;

#[test]
fn sensitivity_tells_an_ill_conditioned_input_from_a_normal_one() {
    common::run_check(SENSITIVITY);
}
