//! The worker's bit-identity helpers on real MLX (CPU): `digest` read in blocks equals the
//! digest of the whole buffer (a broadcast array's too); `same_bits` tells apart what differs in one bit.

mod common;

const CHECK: &str = r#"
import hashlib, sys
import mlx.core as mx
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
digest = w["digest"]

def whole(x):
    raw = bytes(memoryview(mx.contiguous(x.astype(mx.uint8) if x.dtype == mx.bool_ else x).reshape(-1).view(mx.uint8)))
    return hashlib.sha256(f"{x.dtype}{x.shape}".encode() + raw).hexdigest()

cases = [mx.random.normal((1000, 37)).astype(mx.bfloat16), mx.array([True, False, True] * 501),
         mx.random.normal((64, 33)).T, mx.array(3.0), mx.zeros((0, 4)), mx.arange(1009),
         mx.broadcast_to(mx.zeros((1, 4, 1)), (3, 4, 16))]
for x in cases:
    for chunk in [1, 7, 1000, 1 << 28]:
        w["CHUNK_BYTES"] = chunk
        assert digest(x) == whole(x), (x.shape, x.dtype, chunk)
w["CHUNK_BYTES"] = 8
a = mx.arange(1009)
b = mx.concatenate([mx.arange(1008), mx.array([0])])
assert digest(a) != digest(b), "the last element differs"
same = w["same_bits"]
x = mx.random.normal((300, 7))
assert same(x, mx.array(x)) and same(x.T, mx.array(x.T))
assert not same(mx.array([0.0]), mx.array([-0.0])), "signed zeros differ in a bit"
nan = mx.array([float("nan")])
assert same(nan, mx.array(nan))
assert not same(x, x.reshape(7, 300)) and not same(x, x.astype(mx.float16))
assert not same(mx.array([True, False]), mx.array([True, True]))
assert w["all_same_bits"]([x, a], [x, a]) and not w["all_same_bits"]([x, a], [x, b]) and not w["all_same_bits"]([x], [x, a])
print("ok")
"#;

#[test]
fn bit_identity_helpers() {
    common::run_check(CHECK);
}
