//! `dispatch`: whether a by-size module returns the original fn's outputs at a size, and
//! what it spends choosing before it calls the original fn.

mod common;

const DISPATCH: &str = r#"
import os, sys, tempfile
import mlx.core as mx
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
State = w["State"]
State.fn = lambda x: mx.exp(x) * 2.0
w["make_inputs"] = lambda size, seed: ([mx.ones((512, 512))], {})
# A by-size module's shape: a guard, then the original fn, which here is slow to call.
module = '''
import time
def _fits_0(x):
    return x.size <= 16
def _original():
    def fn(x):
        time.sleep(0.001)
        return x
    return fn
def optimized(x):
    if _fits_0(x):
        return x
    return _original()(x)
'''
path = os.path.join(tempfile.mkdtemp(), "by_size.py")
open(path, "w").write(module)
w["cmd_program"]({"id": "by-size", "path": path})
reply = w["cmd_dispatch"]({"program": "by-size", "size": "typical"})
got = reply["seconds"]
# Choosing takes microseconds; the original's 1 ms sleep is not counted.
assert 0 < got < 2e-4, got
assert reply["delegates"], "at typical (512 x 512) it returns the original's outputs"
# Near miss: at a size its guard takes, it runs its own program, not the original.
w["make_inputs"] = lambda size, seed: ([mx.ones((4, 4))], {})
assert not w["cmd_dispatch"]({"program": "by-size", "size": "small"})["delegates"]
# Near miss: it calls the original but returns something else (its outputs changed).
changed = module.replace("return _original()(x)", "return _original()(x) + 0")
open(path.replace("by_size", "changed"), "w").write(changed)
w["cmd_program"]({"id": "changed", "path": path.replace("by_size", "changed")})
w["make_inputs"] = lambda size, seed: ([mx.ones((512, 512))], {})
assert not w["cmd_dispatch"]({"program": "changed", "size": "typical"})["delegates"]
f = w["program"]("by-size")
assert f.__globals__["_original"]()(mx.ones((2,))).shape == (2,)
assert f.__globals__["_original"].__name__ == "_original", "the original is put back"
# A program that calls no original fn is a candidate error.
open(path.replace("by_size", "plain"), "w").write("def optimized(x):\n    return x\n")
w["cmd_program"]({"id": "plain", "path": path.replace("by_size", "plain")})
try:
    w["cmd_dispatch"]({"program": "plain", "size": "typical"})
    raise SystemExit("no error")
except w["CandidateError"]:
    pass
print("ok")
"#;

#[test]
fn dispatch_says_where_the_original_runs_and_times_the_choosing_not_the_original() {
    common::run_check(DISPATCH);
}

const SAME_OUTPUTS: &str = r#"
import os, sys, tempfile
import mlx.core as mx
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
w["make_inputs"] = lambda size, seed: ([mx.arange(16, dtype=mx.float32) - 8.0], {})
folder = tempfile.mkdtemp()
def load(name, source):
    path = os.path.join(folder, name + ".py")
    open(path, "w").write(source)
    w["cmd_program"]({"id": name, "path": path})
load("part", "import mlx.core as mx\ndef optimized(x):\n    return mx.exp(x) * 2.0, x\n")
# The by-size module runs the part's code at this size: the same bits.
load("by-size", "import mlx.core as mx\ndef optimized(x):\n    return (mx.exp(x) * 2.0, x) if x.size <= 16 else (x, x)\n")
assert w["cmd_same_outputs"]({"program": "by-size", "part": "part", "size": "small"})["same"]
# Near misses: another rounding of the same value (exp(x + log 2)), and the wrong part chosen.
load("rounded", "import mlx.core as mx\ndef optimized(x):\n    return mx.exp(x + 0.6931471805599453), x\n")
assert not w["cmd_same_outputs"]({"program": "rounded", "part": "part", "size": "small"})["same"]
load("other", "import mlx.core as mx\ndef optimized(x):\n    return (mx.exp(x) * 2.0, x) if x.size > 16 else (x, x)\n")
assert not w["cmd_same_outputs"]({"program": "other", "part": "part", "size": "small"})["same"]
# Near miss: one output fewer.
load("fewer", "import mlx.core as mx\ndef optimized(x):\n    return (mx.exp(x) * 2.0,)\n")
assert not w["cmd_same_outputs"]({"program": "fewer", "part": "part", "size": "small"})["same"]
print("ok")
"#;

/// A by-size candidate takes over a part's verdict at a size only where it returns there,
/// bit for bit, what the part returns.
#[test]
fn same_outputs_holds_for_the_parts_own_code_only() {
    common::run_check(SAME_OUTPUTS);
}

const TIES: &str = r#"
import sys
import mlx.core as mx
m = {"__name__": "superopt_model"}
exec(compile(sys.stdin.read(), "superopt_model.py", "exec"), m)
tied = mx.array([0.5, 2.0, -1.0, 2.0])
# A choice whose logit equals stock's best is a tie that token order broke...
assert m["ties_best"](tied, 3) and m["ties_best"](tied, 1)
# ...and near misses: a token below the best, or a best that is not tied.
assert not m["ties_best"](tied, 0)
assert not m["ties_best"](mx.array([0.5, 2.0, -1.0, 1.9921875]), 3)
print("ok")
"#;

/// The model proof's count of differing choices that only break a tie of stock's logits.
#[test]
fn a_choice_ties_stocks_best_only_at_an_equal_logit() {
    common::run_check_source(TIES, superopt_worker::MODEL_SOURCE);
}
