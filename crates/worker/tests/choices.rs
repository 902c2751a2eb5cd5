//! The float64 reference makes `fn`'s own discrete choices (argmax, argpartition...): where
//! values tie in fn's precision, float64 would choose otherwise and judge another function.

mod common;

const CHECK: &str = r#"
import sys
import mlx.core as mx
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
w["cmd_load"]({"harness": HARNESS})
ref = w["reference_graph"]("small", 0, "normal", mx.cpu)[0]
# Row 0: fn's choice (column 0, its buffer updated once: 11 * 2), not float64's (20 * 2);
# row 1: the choice both make (column 2). The record run left the buffer as it was.
assert ref.tolist() == [22.0, 120.0], ref.tolist()
# A near miss: without fn's choices the reference is float64's own.
w["discrete_choices"] = lambda size, args, kwargs: None
ref = w["reference_graph"]("small", 0, "normal", mx.cpu)[0]
assert ref.tolist() == [40.0, 120.0], ref.tolist()
print("ok")
"#;

#[test]
fn the_reference_makes_fns_own_choices() {
    let path = format!("{}/../../tests/harnesses/ok/choice_in_place.py", env!("CARGO_MANIFEST_DIR"));
    common::run_check(&CHECK.replace("HARNESS", &format!("{path:?}")));
}

/// Two MoE blocks: each router's choice is replayed, and the reference's own gathers (which
/// sort their pairs) take none of them: fn in float32 stays at float32 distance.
const TWO_BLOCKS: &str = r#"
import sys
import mlx.core as mx
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
w["cmd_load"]({"harness": HARNESS})
for size in ("small", "large"):
    ref = w["reference_graph"](size, 0, "normal", mx.cpu)[0]
    args, _ = w["inputs_for"](size, 0, "normal")
    with mx.stream(mx.cpu):
        o = w["State"].fn(*args).astype(mx.float64)
        err = (mx.sqrt(mx.sum((o - ref) ** 2)) / mx.sqrt(mx.sum(ref * ref))).item()
    assert err < 1e-5, (size, err)
print("ok")
"#;

#[test]
fn two_routers_are_followed_and_the_references_gathers_are_not() {
    let path = format!("{}/../../tests/harnesses/ok/two_moe_blocks.py", env!("CARGO_MANIFEST_DIR"));
    common::run_check(&TWO_BLOCKS.replace("HARNESS", &format!("{path:?}")));
}

/// Only a trace with a discrete primitive makes the references record fn's choices.
const TRACED: &str = r#"
import sys
import mlx.core as mx
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
w["cmd_load"]({"harness": HARNESS})
w["cmd_trace"]({"size": "small", "seed": 0})
args, kwargs = w["inputs_for"]("small", 0, "normal")
made = w["discrete_choices"]("small", args, kwargs)
assert (made is None) == CHOICELESS, made
print("ok")
"#;

fn traced(harness: &str, choiceless: bool) {
    let path = format!("{}/../../tests/harnesses/ok/{harness}", env!("CARGO_MANIFEST_DIR"));
    let check = TRACED.replace("HARNESS", &format!("{path:?}"));
    common::run_check(&check.replace("CHOICELESS", if choiceless { "True" } else { "False" }));
}

#[test]
fn a_trace_with_an_argmax_records_choices() {
    traced("choice_in_place.py", false);
}

#[test]
fn a_trace_without_one_records_none() {
    traced("closure_weights.py", true);
}
