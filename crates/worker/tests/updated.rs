//! The trace says which arguments `fn` updates in place (mlx-lm's KV cache writes its buffers
//! with `a[i:j] = v`), so that the rebuilt program updates them in place too.

mod common;

fn check(harness: &str, expect: &str) -> String {
    let path = format!("{}/../../tests/harnesses/ok/{harness}", env!("CARGO_MANIFEST_DIR"));
    format!(
        r#"
import sys
w = {{"__name__": "superopt_worker"}}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
w["cmd_load"]({{"harness": {path:?}}})
got = w["cmd_trace"]({{"size": "small", "seed": 0}})["updated"]
assert got == {expect}, got
print("ok")
"#
    )
}

#[test]
fn an_argument_updated_in_place_is_said() {
    common::run_check(&check("cache_in_place.py", "[1]"));
}

#[test]
fn a_functional_update_is_not() {
    // A near miss: the same step written with `mx.slice_update`, which leaves `keys` as it was.
    common::run_check(&check("cache_functional.py", "[]"));
}
