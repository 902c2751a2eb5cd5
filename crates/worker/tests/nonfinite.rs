//! The NaN/Inf positions rule on real MLX (CPU): on a finite edge input a candidate may be
//! infinite where the exact value is beyond the output dtype's range, and nowhere else where
//! the original is finite (on an ill-conditioned case, also where the original has no
//! correct digit, and where the original lost places to overflow, up to twice as many
//! others; where the original is non-finite and the exact value is not, anything); on
//! normal inputs the places must match.

mod common;

const CHECK: &str = r#"
import sys
import mlx.core as mx
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
ok, Target = w["nonfinite_ok"], w["Target"]
inf = float("inf")
with mx.stream(mx.cpu):
    exact = Target(mx.array([1.0, 1e39, 3e38, -1e40], dtype=mx.float64))
    o = mx.array([1.0, 3e38, 3e38, -3e38])
    # The exact values 1e39 and -1e40 are beyond float32's range: Inf there is their rounding.
    assert ok(mx.array([1.0, inf, 3e38, -inf]), o, "large", exact)
    assert ok(mx.array([1.0, float("nan"), 3e38, inf]), o, "negative", exact)
    # Near misses: Inf where the exact 3e38 is in range; the same candidate on normal inputs;
    # without the exact values.
    assert not ok(mx.array([1.0, inf, inf, -inf]), o, "large", exact)
    assert not ok(mx.array([1.0, inf, 3e38, -inf]), o, "normal", exact)
    assert not ok(mx.array([1.0, inf, 3e38, -inf]), o, "large")
    # float16 outputs: beyond 65504.
    exact16 = Target(mx.array([7e4, 6e4], dtype=mx.float64))
    o16 = mx.array([6e4, 6e4], dtype=mx.float16)
    assert ok(mx.array([inf, 6e4], dtype=mx.float16), o16, "tiny", exact16)
    assert not ok(mx.array([6e4, inf], dtype=mx.float16), o16, "tiny", exact16)
    # Lenient (an ill-conditioned case): also where the original has no correct digit, here
    # 5e37 and -2e34 against the exact 1e36 and 3e34; not where it has (1.0), nor at an
    # exact 0 it matches or misses by a rounding residue, nor on normal inputs.
    exact = Target(mx.array([1.0, 1e36, 3e34, 0.0, 0.0], dtype=mx.float64))
    o = mx.array([1.0, 5e37, -2e34, 0.0, 1e-30])
    nan = float("nan")
    assert ok(mx.array([1.0, inf, nan, 0.0, 1e-30]), o, "negative", exact, lenient=True)
    assert not ok(mx.array([1.0, inf, nan, 0.0, 1e-30]), o, "negative", exact)
    assert not ok(mx.array([inf, inf, 3e34, 0.0, 1e-30]), o, "negative", exact, lenient=True)
    assert not ok(mx.array([1.0, 5e37, -2e34, nan, 1e-30]), o, "zeros", exact, lenient=True)
    assert not ok(mx.array([1.0, 5e37, -2e34, 0.0, nan]), o, "zeros", exact, lenient=True)
    assert not ok(mx.array([1.0, inf, -2e34, 0.0, 1e-30]), o, "normal", exact, lenient=True)
    # Where the original overflowed (Inf, -Inf, NaN) but the exact value is finite, no digit of
    # it is right: the candidate may be non-finite of another kind there. Near misses: NaN
    # where the original's 2.0 is finite; the same on normal inputs; where the exact is NaN.
    exact = Target(mx.array([1.0, 5.0, 7.0, 2.0, nan], dtype=mx.float64))
    o = mx.array([1.0, inf, nan, 2.0, inf])
    assert ok(mx.array([1.0, nan, -inf, 2.0, inf]), o, "negative", exact)
    assert not ok(mx.array([1.0, nan, -inf, nan, inf]), o, "negative", exact)
    assert not ok(mx.array([1.0, nan, -inf, 2.0, inf]), o, "normal", exact)
    assert ok(mx.array([1.0, inf, nan, 2.0, nan]), o, "large", exact)  # beyond range: as before
    # The original lost (ill-conditioned there) where it is Inf at an exact 5.0; near miss: Inf
    # only where the exact value is NaN or beyond float32's range.
    assert w["orig_lost"](o, exact)
    beyond = Target(mx.array([1.0, 1e39, nan, 2.0, nan], dtype=mx.float64))
    assert not w["orig_lost"](o, beyond)
    # Where the original itself lost places (Inf at the exact 5.0 and 7.0), a lenient case lets
    # the candidate lose up to twice as many others. Near misses: five others; the same not
    # lenient; on normal inputs; where the original lost none.
    lossy = Target(mx.array([5.0, 7.0, 2.0, 3.0, 4.0, 6.0, 8.0, 9.0], dtype=mx.float64))
    o8 = mx.array([inf, inf, 2.0, 3.0, 4.0, 6.0, 8.0, 9.0])
    assert ok(mx.array([inf, inf, inf, nan, 4.0, 6.0, 8.0, 9.0]), o8, "negative", lossy, lenient=True)
    assert ok(mx.array([inf, inf, inf, nan, inf, inf, 8.0, 9.0]), o8, "negative", lossy, lenient=True)
    assert not ok(mx.array([inf, inf, inf, nan, inf, inf, inf, 9.0]), o8, "negative", lossy, lenient=True)
    assert not ok(mx.array([inf, inf, inf, 3.0, 4.0, 6.0, 8.0, 9.0]), o8, "negative", lossy)
    assert not ok(mx.array([inf, inf, inf, 3.0, 4.0, 6.0, 8.0, 9.0]), o8, "normal", lossy, lenient=True)
    whole = mx.array([5.0, 7.0, 2.0, 3.0, 4.0, 6.0, 8.0, 9.0])
    assert not ok(mx.array([5.0, 7.0, inf, 3.0, 4.0, 6.0, 8.0, 9.0]), whole, "negative", lossy, lenient=True)
    places = w["nonfinite_places"](mx.array([1.0, nan, inf, nan, 3.0]), o, exact)
    want = "the candidate's alone: 1, 1 of them finite in float64; the original's alone: 1; other kinds: 2; of 5 places"
    assert places == want, places
print("ok")
"#;

#[test]
fn infinite_only_where_the_exact_value_is_beyond_the_range() {
    common::run_check(CHECK);
}
