//! Every shipped example, and harnesses with awkward signatures, round-trip bit-identically
//! through trace -> IR -> emitted module at every size, and the run's decision is sound.

mod common;
use common::*;
use serde_json::Value;

fn run_capsule(rel: &str, extra: &[&str]) -> (Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let h = harness(rel);
    let mut args = vec!["run", h.to_str().unwrap(), "--json", json.to_str().unwrap(), "--time-budget", "30"];
    args.extend_from_slice(extra);
    let o = superopt(&args);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{rel}: {stdout}\n{stderr}");
    let capsule: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (capsule, stdout)
}

fn assert_round_trip(rel: &str) {
    let (c, stdout) = run_capsule(rel, &[]);
    let traced = &c["candidates"][0];
    assert_eq!(traced["name"], "as-traced");
    assert!(traced["dropped"].is_null(), "{rel}: {}", traced["dropped"]);
    for z in traced["sizes"].as_array().unwrap() {
        assert_eq!(z["verdict"]["bit_identical"], true, "{rel} at {}: {stdout}", z["size"]);
    }
    assert!(stdout.contains("round trip bit-identical at every size"), "{stdout}");
    // Whatever won was verified and significantly faster at every size where it does not
    // run the original, and there its choosing costs <1% (or it is not significantly slower).
    if let Some(w) = c["winner"].as_str() {
        let k = c["candidates"].as_array().unwrap().iter().find(|k| k["name"] == w).unwrap();
        assert_eq!(k["verified"], true);
        for z in k["sizes"].as_array().unwrap() {
            let ok = match z["runs_original"].as_bool() {
                // Where it runs the original, its choosing is timed alone (decide.rs).
                Some(true) => z["dispatch_s"].is_number() || z["timing"]["slower"] == false,
                _ => z["timing"]["significant"] == true,
            };
            assert!(ok, "{rel}: {w} at {}: {}", z["size"], z["timing"]);
        }
    } else {
        assert!(stdout.contains("no verified speedup — original unchanged"), "{stdout}");
    }
}

#[test]
fn fn_that_varies_in_rounding_is_run_and_said_to() {
    let (c, stdout) = run_capsule("tests/harnesses/ok/varies_in_rounding.py", &[]);
    let notes = c["notes"].to_string();
    assert!(notes.contains("fn differs in rounding between two calls"), "{notes}");
    assert!(c["candidates"][0]["verified"] == true, "{stdout}");
    assert!(!stdout.contains("a superopt bug"), "{stdout}");
}

#[test]
fn fn_drawing_random_bits_is_handed_back_and_said_why() {
    let h = harness("tests/harnesses/ok/random_with_key.py");
    let o = superopt(&["run", h.to_str().unwrap()]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("no change: fn draws random bits (RandomBits)"), "{stdout}");
}

#[test]
fn device_time_is_said_and_timed() {
    let (c, stdout) = run_capsule("tests/harnesses/ok/device_time.py", &[]);
    assert!(c["notes"].to_string().contains("timed on the device only (DEVICE_TIME)"), "{stdout}");
    let timed = c["candidates"].as_array().unwrap().iter().flat_map(|k| k["sizes"].as_array().unwrap().clone());
    assert!(timed.filter(|z| z["timing"]["speedup"].as_f64().is_some_and(|s| s > 0.0)).count() >= 3, "{stdout}");
    // A near miss: a harness without DEVICE_TIME says nothing of it.
    let (c, _) = run_capsule("tests/harnesses/ok/varies_in_rounding.py", &[]);
    assert!(!c["notes"].to_string().contains("DEVICE_TIME"));
}

#[test]
fn rms_norm() {
    assert_round_trip("examples/rms_norm.py");
}

#[test]
fn layer_norm() {
    assert_round_trip("examples/layer_norm.py");
}

#[test]
fn softmax() {
    assert_round_trip("examples/softmax.py");
}

#[test]
fn gelu_tanh() {
    assert_round_trip("examples/gelu_tanh.py");
}

#[test]
fn swiglu_mlp() {
    assert_round_trip("examples/swiglu_mlp.py");
}

#[test]
fn rope() {
    assert_round_trip("examples/rope.py");
}

#[test]
fn gqa_attention() {
    assert_round_trip("examples/gqa_attention.py");
}

#[test]
fn mlx_lm_decoder() {
    assert_round_trip("examples/mlx_lm_decoder.py");
}

#[test]
fn contiguous_is_traced_through() {
    assert_round_trip("tests/harnesses/ok/contiguous_roundtrip.py");
}

/// Parameters named as the module's own names (hoisting's `key` and `h`, `out`, `t0`, a
/// builtin) and slices MLX records with negative stops.
#[test]
fn shadowing_names_and_negative_stops() {
    assert_round_trip("tests/harnesses/ok/shadowing_names.py");
}

#[test]
fn a_compiled_function_of_a_constant_is_traced_through() {
    assert_round_trip("tests/harnesses/ok/compiled_on_constant.py");
}

#[test]
fn keyword_arrays_literals_and_bool_outputs() {
    assert_round_trip("tests/harnesses/ok/kwargs_literal.py");
}

#[test]
fn shape_dependent_control_flow_gets_one_program_per_size() {
    let (c, _) = run_capsule("tests/harnesses/ok/shape_dependent.py", &[]);
    assert!(c["shapes"].as_str().unwrap().starts_with("one program per size"), "{}", c["shapes"]);
    assert_round_trip("tests/harnesses/ok/shape_dependent.py");
}

/// Harnesses written apart from the examples, one test each.
macro_rules! zoo {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            assert_round_trip(concat!("tests/harnesses/zoo/", stringify!($name), ".py"));
        }
    )*};
}

zoo!(
    llama_layer,
    qwen2_layer,
    mamba_layer,
    qwen3_layer,
    gemma_layer,
    qwen3_moe_layer,
    gated_delta,
    attention_causal,
    sdpa_fast,
    rope_fast,
    layer_norm_fast,
    fast_ops,
    logsumexp,
    cumsum_scan,
    topk_router,
    deepseek_router,
    quantized_cache_decode,
    embedding_gather,
    concat_split,
    where_select,
    int_ops,
    misc_ops,
);

/// Runs superopt on `rel` with `-o` (the run must write a module: `why` says why it wins),
/// then `check`, Python given `h` (the harness) and `fast` (the written module), which prints
/// "ok" when the module behaves.
fn assert_written_module(rel: &str, why: &str, check: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fast.py");
    let h = harness(rel);
    let o = superopt(&["run", h.to_str().unwrap(), "-o", out.to_str().unwrap(), "--time-budget", "30"]);
    let (stdout, stderr) = text(&o);
    assert!(out.exists(), "{why}: {stdout}\n{stderr}");
    let prelude = r#"
import importlib.util, inspect, sys
import mlx.core as mx

def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m

h, fast = load(sys.argv[1], "h"), load(sys.argv[2], "fast")
"#;
    let python = std::env::var("SUPEROPT_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = format!("{prelude}{check}");
    let args = ["-c", &script, h.to_str().unwrap(), out.to_str().unwrap()];
    let o = std::process::Command::new(python).args(args).output().unwrap();
    assert_eq!(text(&o).0.trim(), "ok", "{}", text(&o).1);
}

/// A program traced at lengths 16, 64 and 128 runs only between them and on multiples of 16:
/// fn drops a ragged tail (`x[:, :(t // 4) * 4]`) that no traced length had, so at 19 the
/// program (which pools every row) would be wrong, and past 128 nothing vouches for it. Near
/// misses: 48 and 128 run the program.
#[test]
fn a_length_no_trace_vouches_for_runs_the_original() {
    let check = r#"
for t, fits in [(19, False), (256, False), (8, False), (48, True), (128, True)]:
    x = mx.random.normal((2, t, 256), key=mx.random.key(t))
    assert fast.fits(x) == fits, (t, fits)
    assert mx.allclose(fast.optimized(x), h.fn(x), rtol=1e-5, atol=1e-6).item(), t
print("ok")
"#;
    assert_written_module("tests/harnesses/ok/truncated_pool.py", "the hand sigmoid becomes mx.sigmoid", check);
}

/// A KV-cache step built for `held < capacity` (every traced size) is not run at capacity,
/// where fn grows the buffer: the module's guard keeps the write inside the buffer, and
/// hands that call to the original (a near miss, one position less, runs the program).
#[test]
fn a_cache_step_at_capacity_runs_the_original() {
    let check = r#"
# capacity 600 and held 599 or 600: inside the traced spans (step dims: any length between the
# least and the most traced), so that the slice's bound alone decides
for held, fits in [(599, True), (600, False)]:
    x, keys = mx.random.normal((1, 1, 64)), mx.random.normal((1, 600, 64))
    positions = mx.zeros((held,), dtype=mx.int32)
    assert fast.fits(x, keys, positions) == fits, (held, fits)
    want = h.fn(x, mx.array(keys), positions)
    got = fast.optimized(x, mx.array(keys), positions)
    assert got[1].shape == want[1].shape and mx.allclose(got[0], want[0], rtol=1e-5).item(), held
print("ok")
"#;
    assert_written_module("tests/harnesses/ok/cache_positions.py", "the hand sigmoid becomes mx.sigmoid", check);
}

/// The written functions take fn's signature: positional-only and keyword-only parameters,
/// defaults (a literal one spelled, one no module can spell passed on to fn). The program
/// runs where every parameter the traces left at its default still is; a near miss (another
/// `mode`, an `extra`, another `weight`, a `scale` other than traced) goes to fn.
#[test]
fn the_written_module_takes_fns_declared_signature() {
    let check = r#"
want = [(p.name, p.kind) for p in inspect.signature(h.fn).parameters.values()]
for f in (fast.optimized, fast.verified, fast.fits):
    assert [(p.name, p.kind) for p in inspect.signature(f).parameters.values()] == want, f
(x,), kw = h.input_factory("typical", 3)
b = mx.ones((256,))
assert fast.fits(x, **kw) and fast.fits(x, scale=2.0) and fast.fits(x, scale=2.0, mode="softmax", extra=None)
# Near misses, each to fn: another mode (the weight left at fn's own default), an extra,
# another weight or bias, the default scale (the traces passed 2.0), another axis, an int 2.
for args, kwargs in [((x,), {"scale": 2.0, "mode": "scale"}), ((x,), {"scale": 2.0, "extra": x}),
                     ((x, b), {"scale": 2.0}), ((x, h.W, b), {"scale": 2.0}), ((x,), {}),
                     ((x,), {"scale": 2.0, "axis": 0}), ((x,), {"scale": 2})]:
    assert not fast.fits(*args, **kwargs) and fast.verified(*args, **kwargs) is None, kwargs
    assert mx.array_equal(fast.optimized(*args, **kwargs), h.fn(*args, **kwargs)).item(), kwargs
assert mx.allclose(fast.optimized(x, scale=2.0), h.fn(x, scale=2.0), rtol=1e-5, atol=1e-6).item()
print("ok")
"#;
    assert_written_module("tests/harnesses/ok/declared_signature.py", "the hand softmax becomes mx.softmax", check);
}

/// An argument rewritten whole (`state[...] = ...`: MLX traces no operation on it) is
/// traced as a further output, and the module writes it into the caller's array: the round
/// trip passes the arguments check (before, every candidate failed it).
#[test]
fn a_state_rewritten_whole_is_written_back() {
    let rel = "tests/mutations/harnesses/state_rewrite.py";
    assert_round_trip(rel);
    let (c, stdout) = run_capsule(rel, &[]);
    assert_eq!(c["candidates"][0]["verified"], true, "{stdout}");
}

/// A compiled candidate of a program that writes an argument in place keeps the write
/// outside `mx.compile` (inside, it would write compile's copy; verification compares the
/// caller's arguments after the call too, so such a candidate would be rejected).
#[test]
fn a_compiled_program_still_writes_its_argument_in_place() {
    let (c, stdout) = run_capsule("tests/mutations/harnesses/cache_write.py", &[]);
    let compile = c["candidates"].as_array().unwrap().iter().find(|k| k["name"] == "compile").unwrap();
    assert_eq!(compile["verified"], true, "{stdout}");
}
