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
