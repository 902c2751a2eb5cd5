//! The float64 references' matrix products through numpy's BLAS (`blas_matmul`), on real
//! MLX (CPU): float64 results as exact as MLX's own float64 matmul, non-finite operands
//! and other dtypes left to MLX, and MLX's matmul restored after the reference runs.

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
    # NaN and Inf go to MLX, which propagates them its own way.
    bad = mx.array(x)
    bad[0, 0, 0] = float("nan")
    bad[1, 2, 3] = float("inf")
    assert w["same_bits"](mm(bad, weight), mlx_matmul(bad, weight))
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
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
mlx = (mx.fast.scaled_dot_product_attention, mx.einsum)

def by_hand(q, k, v, scale, mask):
    """Attention in float64 on MLX's own ops, heads repeated (the definition)."""
    r = q.shape[1] // k.shape[1]
    k, v = mx.repeat(k, r, axis=1), mx.repeat(v, r, axis=1)
    s = (q * scale) @ mx.swapaxes(k, -1, -2)
    if isinstance(mask, str):
        L, S = q.shape[2], k.shape[2]
        mask = mx.arange(S - L, S)[:, None] >= mx.arange(S)[None]
    if mask is not None:
        s = mx.where(mask, s, -mx.inf) if mask.dtype == mx.bool_ else s + mask
    return mx.softmax(s, axis=-1) @ v

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
