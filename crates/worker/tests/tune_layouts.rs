//! Tuning a quantized product's layout: the worker times each layout on the arrays its
//! launch was recorded with (real indices and packed weights, which random values are
//! not), and times none where it has no recording (the launch then keeps its defaults).

mod common;

const CHECK: &str = r#"
import sys
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
import mlx.core as mx

calls = []
def _k0(x, w0, warps=None, rows_per_warp=None, cols=None):
    calls.append((warps, rows_per_warp, cols))
    return x @ w0

def candidate(x, w0):
    return _k0(x, w0)

w["State"].programs["c0"] = candidate
x, w0 = mx.ones((4, 8)), mx.ones((8, 16))
w["State"].launch_arrays[("c0", 0, (4, 16))] = [x, w0]
configs = [{"warps": 4, "rows": 1, "cols": 2}, {"warps": 8, "rows": 1, "cols": 4}]
req = {"program": "c0", "kernel": 0, "shape": [4, 16], "inputs": [], "configs": configs, "seconds": 30.0}
reply = w["cmd_tune"](req)
assert reply["tried"] == 2 and all(isinstance(t, float) for t in reply["seconds"]), reply
assert (4, 1, 2) in calls and (8, 1, 4) in calls, calls
missing = dict(req, shape=[2, 16])
assert w["cmd_tune"](missing) == {"seconds": [None, None], "tried": 0}, "no recording: nothing timed"

# A compiled candidate's launch is recorded with arrays that run outside its compile.
_LAUNCHES = None
def _k1(x, w0, warps=None, rows_per_warp=None, cols=None):
    if _LAUNCHES is not None:
        _LAUNCHES.append((1, (x.shape[0], w0.shape[1]), [(a.shape, a.dtype) for a in (x, w0)], [x, w0]))
    calls.append((warps, rows_per_warp, cols))
    return x @ w0
def compiled(x, w0):
    return _k1(x, w0) * 2
w["State"].factory = lambda size, seed: ((mx.ones((4, 8)), mx.ones((8, 16))), {})
w["State"].programs["c1"] = mx.compile(compiled)
launches = w["cmd_kernel_launches"]({"program": "c1", "size": "small"})["launches"]
assert [(l["kernel"], l["shape"]) for l in launches] == [(1, [4, 16])], launches
assert ("c0", 0, (4, 16)) not in w["State"].launch_arrays, "only the launches of the last request are kept"
reply = w["cmd_tune"](dict(req, program="c1", kernel=1))
assert reply["tried"] == 2 and all(isinstance(t, float) for t in reply["seconds"]), reply
print("ok")
"#;

#[test]
fn a_quantized_launch_is_timed_in_each_layout_on_its_recorded_arrays() {
    common::run_check(CHECK);
}
