//! Snapshots of emitted modules: a general program, a compiled one, and per-size variants.

use superopt_emit::{emit, ModuleInfo};
use superopt_ir::{import_trace, Program, TraceEvents};
use superopt_search::{as_traced, strategies::Compiled, Strategy};

/// rms_norm over (rows, dim), as MLX 0.32 traces it.
fn rms_trace(rows: i64, dim: i64) -> Program {
    let inv = (1.0 / dim as f64) as f32 as f64;
    let text = format!(
        r#"{{"params": [{{"name": "x", "kind": "array", "array": "A"}}, {{"name": "weight", "kind": "array", "array": "B"}}],
            "output_kind": "array",
            "inputs": [["A", [{rows}, {dim}], "float32"], ["B", [{dim}], "float32"]],
            "outputs": [["K", [{rows}, {dim}], "float32"]],
            "constants": [{{"name": "C", "shape": [], "dtype": "float32", "scalar": {inv:?}}},
                          {{"name": "D", "shape": [], "dtype": "float32", "scalar": 9.999999747378752e-06}}],
            "nodes": [
              {{"op": "Multiply", "args": [], "inputs": [["A", [{rows}, {dim}], "float32"], ["A", [{rows}, {dim}], "float32"]], "outputs": [["E", [{rows}, {dim}], "float32"]]}},
              {{"op": "Reduce", "args": [2, [1]], "inputs": [["E", [{rows}, {dim}], "float32"]], "outputs": [["F", [{rows}, 1], "float32"]]}},
              {{"op": "Broadcast", "args": [[{rows}, 1]], "inputs": [["C", [], "float32"]], "outputs": [["G", [{rows}, 1], "float32"]]}},
              {{"op": "Multiply", "args": [], "inputs": [["F", [{rows}, 1], "float32"], ["G", [{rows}, 1], "float32"]], "outputs": [["H", [{rows}, 1], "float32"]]}},
              {{"op": "Add", "args": [], "inputs": [["H", [{rows}, 1], "float32"], ["D", [], "float32"]], "outputs": [["I", [{rows}, 1], "float32"]]}},
              {{"op": "Sqrt", "args": [true], "inputs": [["I", [{rows}, 1], "float32"]], "outputs": [["J", [{rows}, 1], "float32"]]}},
              {{"op": "Multiply", "args": [], "inputs": [["A", [{rows}, {dim}], "float32"], ["J", [{rows}, 1], "float32"]], "outputs": [["K", [{rows}, {dim}], "float32"]]}}
            ]}}"#
    );
    let events: TraceEvents = serde_json::from_str(&text).unwrap();
    import_trace(&events).unwrap()
}

fn info() -> ModuleInfo<'static> {
    ModuleInfo { harness: "/work/rms_norm.py", constants_file: "fast.safetensors", notes: vec!["(snapshot)".into()] }
}

fn align(traces: &[Program]) -> superopt_ir::Plan {
    // The alignment lives in superopt-trace; here the plan is assembled by hand.
    let guard = superopt_ir::Guard {
        inputs: vec![
            superopt_ir::InputGuard { dtype: superopt_ir::Dtype::Float32, dims: vec![None, None] },
            superopt_ir::InputGuard { dtype: superopt_ir::Dtype::Float32, dims: vec![None] },
        ],
        ties: vec![(superopt_ir::DimTerm { input: 0, axis: 1 }, superopt_ir::DimTerm { input: 1, axis: 0 })],
        agree: vec![],
        within: vec![],
        steps: vec![],
        spans: vec![],
    };
    let mut p = traces[0].clone();
    let dim = superopt_ir::Dim { terms: vec![superopt_ir::DimTerm { input: 0, axis: 1 }], num: 1, den: 1, offset: 0 };
    let rows = superopt_ir::Dim { terms: vec![superopt_ir::DimTerm { input: 0, axis: 0 }], num: 1, den: 1, offset: 0 };
    p.constants[0].data = superopt_ir::ConstData::Scalar { expr: superopt_ir::ScalarExpr::Recip { dim } };
    p.nodes[2].args = vec![superopt_ir::Arg::List(vec![
        superopt_ir::Arg::Int(rows),
        superopt_ir::Arg::Int(superopt_ir::Dim::constant(1)),
    ])];
    superopt_ir::Plan { variants: vec![(guard, p)], per_size_because: None }
}

#[test]
fn general_eager_module() {
    let plan = align(&[rms_trace(8, 64)]);
    insta::assert_snapshot!(emit(&as_traced(&plan), &info()).unwrap().source);
}

#[test]
fn a_module_runs_only_where_the_forms_the_traces_could_not_tell_apart_agree() {
    let mut plan = align(&[rms_trace(8, 64)]);
    let term = |axis| superopt_ir::DimTerm { input: 0, axis };
    let rows = superopt_ir::Dim { terms: vec![term(0)], num: 1, den: 1, offset: 0 };
    let eighth = superopt_ir::Dim { terms: vec![term(1)], num: 1, den: 8, offset: 0 };
    plan.variants[0].0.agree.push((rows, eighth));
    let source = emit(&as_traced(&plan), &info()).unwrap().source;
    assert!(source.contains("and x.shape[0] == x.shape[1] // 8\n"), "{source}");
}

#[test]
fn nothing_that_follows_a_dim_changing_at_every_call_is_compiled() {
    let mut plan = align(&[rms_trace(8, 64)]);
    let weight = superopt_ir::DimTerm { input: 1, axis: 0 };
    let compiled = |plan: &superopt_ir::Plan| emit(&Compiled.propose(plan).remove(0), &info()).unwrap().source;
    assert!(compiled(&plan).contains("_program_0 = mx.compile(_program_0)"), "a near miss: no step dims");
    plan.variants[0].0.set_steps(&[weight]);
    let source = compiled(&plan);
    assert!(!source.contains("= mx.compile("), "every node reads x, whose dim is tied to the weight's: {source}");
    assert!(source.contains("Compiled: only what never reads the dims that change at every call"), "{source}");
}

#[test]
fn compiled_module() {
    let plan = align(&[rms_trace(8, 64)]);
    let c = Compiled.propose(&plan).remove(0);
    insta::assert_snapshot!(emit(&c, &info()).unwrap().source);
}

#[test]
fn per_size_module() {
    let traces = [rms_trace(8, 64), rms_trace(256, 1024)];
    let variants = traces.iter().map(|p| {
        let types: Vec<_> = p.inputs.iter().map(|i| (p.value(*i).shape.clone(), p.value(*i).dtype)).collect();
        (superopt_ir::Guard::exact(&types), p.clone())
    });
    let plan = superopt_ir::Plan { variants: variants.collect(), per_size_because: Some("test".into()) };
    insta::assert_snapshot!(emit(&as_traced(&plan), &info()).unwrap().source);
}

#[test]
fn a_primitive_without_a_python_form_is_an_emit_error() {
    let mut p = rms_trace(8, 64);
    p.nodes[0].op = superopt_ir::Op::AsStrided;
    let plan = superopt_ir::Plan { variants: vec![(superopt_ir::Guard::exact(&[]), p)], per_size_because: None };
    let e = emit(&as_traced(&plan), &info()).unwrap_err();
    assert!(e.to_string().contains("AsStrided"), "{e}");
}

/// `x + outer(arange(8), arange(8))`: the table depends on no input.
fn table_trace() -> Program {
    let text = r#"{"params": [{"name": "x", "kind": "array", "array": "A"}],
        "output_kind": "array",
        "inputs": [["A", [8, 8], "float32"]],
        "outputs": [["H", [8, 8], "float32"]],
        "constants": [],
        "nodes": [
          {"op": "Arange", "args": [0.0, 8.0, 1.0], "inputs": [], "outputs": [["B", [8], "float32"]]},
          {"op": "ExpandDims", "args": [[1]], "inputs": [["B", [8], "float32"]], "outputs": [["C", [8, 1], "float32"]]},
          {"op": "ExpandDims", "args": [[0]], "inputs": [["B", [8], "float32"]], "outputs": [["D", [1, 8], "float32"]]},
          {"op": "Multiply", "args": [], "inputs": [["C", [8, 1], "float32"], ["D", [1, 8], "float32"]], "outputs": [["E", [8, 8], "float32"]]},
          {"op": "Add", "args": [], "inputs": [["A", [8, 8], "float32"], ["E", [8, 8], "float32"]], "outputs": [["H", [8, 8], "float32"]]}
        ]}"#;
    let events: TraceEvents = serde_json::from_str(text).unwrap();
    import_trace(&events).unwrap()
}

#[test]
fn hoisted_module() {
    let p = table_trace();
    let types: Vec<_> = p.inputs.iter().map(|i| (p.value(*i).shape.clone(), p.value(*i).dtype)).collect();
    let plan = superopt_ir::Plan { variants: vec![(superopt_ir::Guard::exact(&types), p)], per_size_because: None };
    let mut c = Compiled.propose(&plan).remove(0);
    c.hoist = true;
    insta::assert_snapshot!(emit(&c, &info()).unwrap().source);
}

#[test]
fn islands_module() {
    let plan = align(&[rms_trace(8, 64)]);
    let c = Compiled
        .propose(&plan)
        .into_iter()
        .find(|c| c.compile == superopt_search::Compile::Islands)
        .expect("rms_norm has an island");
    insta::assert_snapshot!(emit(&c, &info()).unwrap().source);
}

/// Eager at small sizes, compiled above 4096 input elements: each variant checks its range.
#[test]
fn by_size_module() {
    let plan = align(&[rms_trace(8, 64)]);
    let small = superopt_search::SizeRange { above: None, upto: Some(4096) };
    let large = superopt_search::SizeRange { above: Some(4096), upto: None };
    let c = superopt_search::by_size(vec![(small, as_traced(&plan)), (large, Compiled.propose(&plan).remove(0))]);
    insta::assert_snapshot!(emit(&c, &info()).unwrap().source);
}

/// The by-size module on real MLX: each part runs at its own sizes and computes RMSNorm.
#[test]
fn by_size_module_runs_each_part_at_its_sizes() {
    let plan = align(&[rms_trace(8, 64)]);
    let small = superopt_search::SizeRange { above: None, upto: Some(4096) };
    let large = superopt_search::SizeRange { above: Some(4096), upto: None };
    let c = superopt_search::by_size(vec![(small, as_traced(&plan)), (large, Compiled.propose(&plan).remove(0))]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fast.py"), emit(&c, &info()).unwrap().source).unwrap();
    let check = r#"
import sys
import mlx.core as mx
sys.path.insert(0, sys.argv[1])
import fast
ran = []
for k in (0, 1):
    f = getattr(fast, f"_program_{k}")
    setattr(fast, f"_program_{k}", lambda *a, k=k, f=f: ran.append(k) or f(*a))
for rows, dim in [(8, 64), (16, 512)]:
    x, w = mx.random.normal((rows, dim)), mx.random.normal((dim,))
    want = x * mx.rsqrt(mx.mean(x * x, axis=-1, keepdims=True) + 1e-5)
    assert mx.allclose(fast.optimized(x, w), want, rtol=1e-5, atol=1e-6).item(), (rows, dim)
print(ran)
"#;
    let python = std::env::var("SUPEROPT_PYTHON").unwrap_or_else(|_| "python3".into());
    let o = std::process::Command::new(python).args(["-c", check, dir.path().to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // 8x64 + 64 elements: the eager part; 16x512 + 512: the compiled one.
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "[0, 1]");
}

/// A by-size module whose one part covers small sizes calls the harness's own `fn` above
/// them (a by-size candidate leaves the sizes where nothing was faster to the original).
#[test]
fn by_size_module_runs_the_original_where_no_part_does() {
    let plan = align(&[rms_trace(8, 64)]);
    let small = superopt_search::SizeRange { above: None, upto: Some(4096) };
    let c = superopt_search::by_size(vec![(small, Compiled.propose(&plan).remove(0))]);
    let dir = tempfile::tempdir().unwrap();
    let harness = dir.path().join("harness.py");
    std::fs::write(&harness, "def fn(x, weight):\n    return x * 0.0 - 7.0\n").unwrap();
    let info = ModuleInfo { harness: harness.to_str().unwrap(), constants_file: "fast.safetensors", notes: vec![] };
    std::fs::write(dir.path().join("fast.py"), emit(&c, &info).unwrap().source).unwrap();
    let check = r#"
import sys
import mlx.core as mx
sys.path.insert(0, sys.argv[1])
import fast
x, w = mx.random.normal((8, 64)), mx.random.normal((64,))
want = x * mx.rsqrt(mx.mean(x * x, axis=-1, keepdims=True) + 1e-5)
assert mx.allclose(fast.optimized(x, w), want, rtol=1e-5, atol=1e-6).item()
big = fast.optimized(mx.random.normal((16, 512)), mx.random.normal((512,)))
assert mx.all(big == -7.0).item(), "above the part's sizes the harness's fn runs"
print("ok")
"#;
    let python = std::env::var("SUPEROPT_PYTHON").unwrap_or_else(|_| "python3".into());
    let o = std::process::Command::new(python).args(["-c", check, dir.path().to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
