//! The module around the programs: constants, guards, dispatch and fallback.

use crate::ops::{self, dtype, py_float, Ctx};
use crate::EmitError;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;
use superopt_ir::{
    passes, ConstData, Dim, DimTerm, FnDefault, FnParam, Guard, Node, Param, ParamKind, Plan, Program, ScalarExpr,
    ValueId,
};
use superopt_kernel::{launch, Call, Layout, Target};
use superopt_search::{Candidate, Compile, SizeRange};

/// Facts the module's header and fallback need.
pub struct ModuleInfo<'a> {
    /// The harness file, absolute: the fallback loads `fn` from it.
    pub harness: &'a str,
    /// The safetensors file beside the module, by file name.
    pub constants_file: &'a str,
    /// Lines for the docstring (verification and timing summary).
    pub notes: Vec<String>,
}

#[derive(Debug)]
pub struct Emitted {
    pub source: String,
    /// Content keys of the array constants the module loads.
    pub tensors: Vec<String>,
}

const HELPERS: &str = r#"
def _index(ndim, indices, axes, sizes):
    """Advanced indices for MLX's Gather/Scatter: indices at `axes`, ranges of `sizes` elsewhere."""
    idx = mx.broadcast_arrays(*indices) if len(indices) > 1 else list(indices)
    lead = idx[0].shape if idx else ()
    parts = []
    for ax in range(ndim):
        if ax in axes:
            parts.append(mx.reshape(idx[axes.index(ax)], list(lead) + [1] * ndim))
        else:
            shape = [1] * (len(lead) + ndim)
            shape[len(lead) + ax] = sizes[ax]
            parts.append(mx.reshape(mx.arange(sizes[ax]), shape))
    return tuple(parts)


def _gather(a, indices, axes, slice_sizes):
    """MLX's Gather: out[i..., s...] = a[indices at axes, slices elsewhere]."""
    if len(axes) != 1 or slice_sizes[axes[0]] != 1:
        return a[_index(a.ndim, indices, axes, slice_sizes)]
    # One axis, one element there: a take (copying whole slices, not indexing every element).
    ax, lead = axes[0], indices[0].ndim
    out = mx.take(a, indices[0], axis=ax)
    if lead and ax:
        out = mx.transpose(out, [*range(ax, ax + lead), *range(ax), *range(ax + lead, out.ndim)])
    out = mx.expand_dims(out, lead + ax)
    if any(s != n for s, n in zip(slice_sizes, a.shape)):
        out = out[(slice(None),) * lead + tuple(slice(0, s) for s in slice_sizes)]
    return out


def _scatter(a, indices, updates, axes, reduce):
    """MLX's Scatter; reduce is 0 max, 1 min, 2 sum, 3 prod, 4 none."""
    lead = indices[0].ndim if indices else 0
    index = _index(a.ndim, indices, axes, updates.shape[lead:])
    return _update(a, index, updates, reduce)


def _update(a, index, updates, reduce):
    if reduce == 4:
        out = a.reshape(a.shape)
        out[index] = updates
        return out
    at = a.at[index]
    return [at.maximum, at.minimum, at.add, at.multiply][reduce](updates)


def _assign(a, index, updates):
    """MLX's SliceUpdate in place, as fn does to this argument: the caller's array holds the update."""
    a[index] = updates
    return a


def _pad(a, value, axes, low, high):
    width = [(0, 0)] * a.ndim
    for ax, lo, hi in zip(axes, low, high):
        width[ax] = (lo, hi)
    return mx.pad(a, width, constant_values=value)


def _nan_equal(a, b):
    return mx.logical_or(mx.equal(a, b), mx.logical_and(mx.isnan(a), mx.isnan(b)))
"#;

/// Emits `candidate` as a module defining `optimized`.
pub fn emit(candidate: &Candidate, info: &ModuleInfo) -> Result<Emitted, EmitError> {
    let plan = &candidate.plan;
    let sig = &plan.variants[0].1.signature;
    let mut s = String::new();
    header(&mut s, candidate, info);
    let mut tensors = BTreeSet::new();
    let mut bodies = String::new();
    let kernels = Kernels::of(plan);
    // A by-size candidate's variants are its parts' in order; each checks its size range.
    let parts: Vec<(SizeRange, &Candidate)> = if candidate.parts.is_empty() {
        vec![(SizeRange::ALL, candidate)]
    } else {
        candidate.parts.iter().map(|(r, c)| (*r, c)).collect()
    };
    let mut k = 0;
    for (range, part) in parts {
        let target = Kernels::of(&part.plan).target();
        for (guard, program) in &part.plan.variants {
            bodies.push_str(&program_fn(k, program, &guard.steps, part, &mut tensors, &kernels)?);
            bodies.push_str(&fits_fn(k, guard, program, target, range));
            k += 1;
        }
    }
    if !tensors.is_empty() {
        writeln!(s, "_HERE = os.path.dirname(os.path.abspath(__file__))").unwrap();
        writeln!(s, "_TENSORS = mx.load(os.path.join(_HERE, {:?}))\n", info.constants_file).unwrap();
    }
    if ["_gather(", "_scatter(", "_update(", "_assign(", "_pad(", "_nan_equal("].iter().any(|h| bodies.contains(h)) {
        s.push_str(HELPERS);
        s.push('\n');
    }
    s.push_str(&kernels.definitions());
    s.push_str(&bodies);
    s.push_str(&dispatch(plan, sig));
    fallback(&mut s, info.harness);
    Ok(Emitted { source: s, tensors: tensors.into_iter().collect() })
}

fn header(s: &mut String, c: &Candidate, info: &ModuleInfo) {
    let harness = std::path::Path::new(info.harness).file_name().map_or(info.harness.into(), |n| n.to_string_lossy());
    writeln!(s, "\"\"\"{harness}'s `fn`, as rebuilt by superopt {}.\n", env!("CARGO_PKG_VERSION")).unwrap();
    writeln!(s, "Candidate: {}", c.label()).unwrap();
    if !c.rules.is_empty() {
        writeln!(s, "Rules: {}", c.rules.join("; ")).unwrap();
    }
    if c.compile != Compile::Eager && c.plan.variants.iter().any(|(g, _)| !g.steps.is_empty()) {
        writeln!(s, "Compiled: only what never reads the dims that change at every call (STEP_DIMS).").unwrap();
    }
    for n in &info.notes {
        writeln!(s, "{n}").unwrap();
    }
    s.push_str("\"\"\"\n\nimport importlib.util\nimport os\n\nimport mlx.core as mx\n\n\n");
}

fn array_params(p: &Program) -> Vec<(usize, String)> {
    p.signature
        .params
        .iter()
        .filter_map(|q| match q {
            Param::Array { name, input, .. } => Some((*input, name.clone())),
            _ => None,
        })
        .collect()
}

/// The name the module's inner functions give input `input`: fn's parameter name, or
/// `in{input}` where that name could shadow one the generated code reads.
fn input_name(p: &Program, input: usize) -> String {
    array_params(p).into_iter().find(|(i, n)| *i == input && safe_name(n)).map_or(format!("in{input}"), |(_, n)| n)
}

/// The inner name of signature parameter `j` (see [`input_name`]).
fn param_name(p: &Program, j: usize) -> String {
    match &p.signature.params[j] {
        Param::Array { input, .. } => input_name(p, *input),
        q if safe_name(q.name()) => q.name().to_string(),
        _ => format!("lit{j}"),
    }
}

/// Names the generated code reads unqualified (its modules, its locals and Python's
/// builtins), which a parameter of the same name would shadow.
const READ_NAMES: &[&str] = &[
    "mx",
    "os",
    "importlib",
    "key",
    "h",
    "out",
    "abs",
    "all",
    "any",
    "bool",
    "dict",
    "enumerate",
    "float",
    "getattr",
    "hasattr",
    "int",
    "isinstance",
    "len",
    "list",
    "map",
    "max",
    "min",
    "object",
    "print",
    "range",
    "reversed",
    "round",
    "set",
    "slice",
    "sorted",
    "str",
    "sum",
    "tuple",
    "type",
    "zip",
];

/// Whether a parameter name can be an inner function's own: not read by the generated code,
/// not one of its value names (`t3`, `in0`, `lit1`) and not private (`_...`).
fn safe_name(name: &str) -> bool {
    let numbered = ["t", "in", "lit"].iter().any(|prefix| {
        name.strip_prefix(prefix).is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
    });
    !numbered && !name.starts_with('_') && !READ_NAMES.contains(&name)
}

fn render_dim(p: &Program) -> impl Fn(&Dim) -> String + '_ {
    move |d: &Dim| d.render(&|t: DimTerm| format!("{}.shape[{}]", input_name(p, t.input), t.axis))
}

fn scalar(expr: &ScalarExpr, dim: &dyn Fn(&Dim) -> String) -> String {
    match expr {
        ScalarExpr::Lit { v } => py_float(*v),
        ScalarExpr::Recip { dim: d } => format!("1.0 / ({})", dim(d)),
        ScalarExpr::Rsqrt { dim: d } => format!("float({}) ** -0.5", dim(d)),
        ScalarExpr::Of { dim: d } => format!("float({})", dim(d)),
    }
}

fn program_fn(
    k: usize,
    p: &Program,
    steps: &[DimTerm],
    c: &Candidate,
    tensors: &mut BTreeSet<String>,
    kernels: &Kernels,
) -> Result<String, EmitError> {
    if p.signature.written.is_empty() {
        return program_body(&format!("_program_{k}"), k, p, steps, c, tensors, kernels);
    }
    // fn rewrote these arguments whole (`a[...] = v`): the program computes their values
    // last (compiled or not) and `_program_{k}` writes them into the caller's arrays.
    let mut s = program_body(&format!("_compute_{k}"), k, p, steps, c, tensors, kernels)?;
    let params: Vec<String> = (0..p.inputs.len()).map(|i| input_name(p, i)).collect();
    let returned = p.returned().len();
    let news: Vec<String> = (0..p.signature.written.len()).map(|j| format!("new{j}")).collect();
    let outs: Vec<String> = (0..returned).map(|j| format!("out{j}")).collect();
    let ps = params.join(", ");
    write!(
        s,
        "def _program_{k}({ps}):\n    {} = _compute_{k}({ps})\n",
        [outs.clone(), news.clone()].concat().join(", ")
    )
    .unwrap();
    for (i, new) in p.signature.written.iter().zip(&news) {
        writeln!(s, "    {}[...] = {new}", params[*i]).unwrap();
    }
    let value = if returned == 1 { outs[0].clone() } else { format!("({})", outs.join(", ")) };
    write!(s, "    return {value}\n\n\n").unwrap();
    Ok(s)
}

/// The function `name` computing `p`'s outputs from its inputs.
fn program_body(
    name: &str,
    k: usize,
    p: &Program,
    steps: &[DimTerm],
    c: &Candidate,
    tensors: &mut BTreeSet<String>,
    kernels: &Kernels,
) -> Result<String, EmitError> {
    let mut names: Vec<String> = (0..p.values.len()).map(|v| format!("t{v}")).collect();
    let params: Vec<String> = p.inputs.iter().enumerate().map(|(i, _)| input_name(p, i)).collect();
    for (i, v) in p.inputs.iter().enumerate() {
        names[*v] = params[i].clone();
    }
    let mut islands = Islands { prefix: format!("_island_{k}"), defs: String::new(), count: 0 };
    let writes = p.nodes.iter().any(|n| ops::in_place(p, n));
    if (!steps.is_empty() || writes) && c.compile != Compile::Eager {
        // Hoisted values and compiled functions are kept per input shape: neither may see the
        // dims that change at every call. Nor may a compiled function write an argument in
        // place: it would write compile's copy, not the caller's array.
        let (nodes, runs) = steady_first(p, steps, c.compile);
        let body = block(p, &nodes, &names, &p.outputs, Part::Body, Some((&mut islands, runs)), tensors, kernels)?;
        return Ok(islands.defs.clone() + &function(name, &params, &body, Compile::Eager));
    }
    let hoist = if c.hoist { passes::hoistable(p) } else { None };
    let Some(hoist) = hoist else {
        let all: Vec<&Node> = p.nodes.iter().collect();
        let isl = (c.compile == Compile::Islands).then(|| (&mut islands, passes::elementwise_runs(&all)));
        let body = block(p, &all, &names, &p.outputs, Part::Body, isl, tensors, kernels)?;
        return Ok(islands.defs.clone() + &function(name, &params, &body, c.compile));
    };
    // Values the hoisted part hands to the rest.
    let once: Vec<&Node> = p.nodes.iter().zip(&hoist).filter(|(_, h)| **h).map(|(n, _)| n).collect();
    let each: Vec<&Node> = p.nodes.iter().zip(&hoist).filter(|(_, h)| !**h).map(|(n, _)| n).collect();
    let made: BTreeSet<ValueId> = once.iter().flat_map(|n| n.outputs.iter().copied()).collect();
    let handed: Vec<ValueId> = each
        .iter()
        .flat_map(|n| n.inputs.iter().copied())
        .filter(|v| made.contains(v))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut s = function(
        &format!("_hoisted_{k}"),
        &params,
        &block(p, &once, &names, &handed, Part::Tuple, None, tensors, kernels)?,
        Compile::Eager,
    );
    let body_params: Vec<String> = params.iter().cloned().chain(handed.iter().map(|v| names[*v].clone())).collect();
    let isl = (c.compile == Compile::Islands).then(|| (&mut islands, passes::elementwise_runs(&each)));
    let body = block(p, &each, &names, &p.outputs, Part::Body, isl, tensors, kernels)?;
    s.push_str(&islands.defs);
    s.push_str(&function(&format!("_body_{k}"), &body_params, &body, c.compile));
    let key: Vec<String> = params.iter().map(|n| format!("{n}.shape, {n}.dtype")).collect();
    write!(
        s,
        r#"_HOISTED_{k} = {{}}


def {name}({ps}):
    """Input-independent values are computed once per input shape."""
    key = ({key},)
    h = _HOISTED_{k}.get(key)
    if h is None:
        h = _HOISTED_{k}[key] = _hoisted_{k}({ps})
        mx.eval(h)
    return _body_{k}({ps}, *h)


"#,
        ps = params.join(", "),
        key = key.join(", ")
    )
    .unwrap();
    Ok(s)
}

/// The nodes in the order to emit them, and the runs of them to compile. Without `steps`:
/// the program's order, compiled between its in-place writes of arguments (a compiled
/// function writing one would write compile's copy, not the caller's array). With them:
/// the nodes that follow neither `steps` nor such a write (their order kept), then those
/// that do, and the first compiled as a whole, or their elementwise runs (islands).
fn steady_first<'p>(p: &'p Program, steps: &[DimTerm], compile: Compile) -> (Vec<&'p Node>, Vec<(usize, usize)>) {
    let all: Vec<&Node> = p.nodes.iter().collect();
    if steps.is_empty() {
        let runs = match compile {
            Compile::Islands => passes::elementwise_runs(&all),
            _ => between_writes(p, &all),
        };
        return (all, runs);
    }
    let mut follows = passes::stepping(p, &all, steps);
    let mut written: BTreeSet<ValueId> = BTreeSet::new();
    for (n, f) in all.iter().zip(follows.iter_mut()) {
        *f |= ops::in_place(p, n) || n.inputs.iter().any(|v| written.contains(v));
        if *f {
            written.extend(n.outputs.iter().copied());
        }
    }
    let steady: Vec<&Node> = all.iter().zip(&follows).filter(|x| !x.1).map(|x| *x.0).collect();
    let moving = all.iter().zip(&follows).filter(|x| *x.1).map(|x| *x.0);
    let runs = match compile {
        Compile::Islands => passes::elementwise_runs(&steady),
        _ if steady.is_empty() => vec![],
        _ => vec![(0, steady.len())],
    };
    (steady.iter().copied().chain(moving).collect(), runs)
}

/// The longest runs of `nodes` holding no in-place write of an argument.
fn between_writes(p: &Program, nodes: &[&Node]) -> Vec<(usize, usize)> {
    let mut runs = vec![];
    let mut start = 0;
    for (k, n) in nodes.iter().enumerate() {
        if ops::in_place(p, n) {
            if k > start {
                runs.push((start, k));
            }
            start = k + 1;
        }
    }
    if nodes.len() > start {
        runs.push((start, nodes.len()));
    }
    runs
}

/// `def name(params): body`, wrapped in `mx.compile` when asked.
fn function(name: &str, params: &[String], body: &str, compile: Compile) -> String {
    let mut s = format!("def {name}({}):\n{body}\n", params.join(", "));
    if compile == Compile::Whole {
        writeln!(s, "{name} = mx.compile({name})\n").unwrap();
    }
    s.push('\n');
    s
}

/// Compiled elementwise islands of one program: their definitions, named `{prefix}_{j}`.
struct Islands {
    prefix: String,
    defs: String,
    count: usize,
}

/// What a block of statements is part of.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    /// A function body: constants defined, results returned as they are.
    Body,
    /// The hoisted part: results always returned as a tuple.
    Tuple,
    /// An island: constants arrive as parameters.
    Island,
}

/// The statements computing `nodes` (and the constants they read), returning `results`.
/// With `islands`, its runs of nodes become calls of compiled functions defined there.
#[allow(clippy::too_many_arguments)]
fn block(
    p: &Program,
    nodes: &[&Node],
    names: &[String],
    results: &[ValueId],
    part: Part,
    islands: Option<(&mut Islands, Vec<(usize, usize)>)>,
    tensors: &mut BTreeSet<String>,
    kernels: &Kernels,
) -> Result<String, EmitError> {
    let dim = render_dim(p);
    let (mut islands, runs) = match islands {
        Some((isl, runs)) => (Some(isl), runs),
        None => (None, vec![]),
    };
    // Constants are defined here, islands included (their sizes may read any input);
    // an island's body receives them as parameters.
    let read: BTreeSet<ValueId> = if part == Part::Island {
        BTreeSet::new()
    } else {
        nodes.iter().flat_map(|n| n.inputs.iter().copied()).chain(results.iter().copied()).collect()
    };
    let runs: HashMap<usize, usize> = runs.into_iter().collect();
    // Where each value is last read in `nodes`: an island's result is used after it.
    let mut last_read: HashMap<ValueId, usize> = HashMap::new();
    if !runs.is_empty() {
        for (i, n) in nodes.iter().enumerate() {
            n.inputs.iter().for_each(|v| _ = last_read.insert(*v, i));
        }
    }
    let mut body = String::new();
    for c in p.constants.iter().filter(|c| read.contains(&c.value)) {
        let dt = dtype(p.value(c.value).dtype);
        let rhs = match &c.data {
            ConstData::Scalar { expr } => format!("mx.array({}, dtype={dt})", scalar(expr, &dim)),
            ConstData::Tensor { key } => {
                tensors.insert(key.clone());
                format!("_TENSORS[{key:?}]")
            }
        };
        writeln!(body, "    {} = {rhs}", names[c.value]).unwrap();
    }
    let mut i = 0;
    while i < nodes.len() {
        if let (Some(&b), Some(isl)) = (runs.get(&i), islands.as_deref_mut()) {
            let used_after = |v: &ValueId| last_read.get(v).is_some_and(|r| *r >= b) || results.contains(v);
            body.push_str(&island(p, &nodes[i..b], &used_after, names, isl, tensors, kernels)?);
            i = b;
            continue;
        }
        let node = nodes[i];
        let cx = Ctx {
            ins: node.inputs.iter().map(|i| names[*i].clone()).collect(),
            outs: node.outputs.iter().map(|o| p.value(*o)).collect(),
            in_values: node.inputs.iter().map(|i| p.value(*i)).collect(),
            dim: &dim,
            in_place: ops::in_place(p, node),
        };
        let rhs = match kernels.index(node) {
            Some(i) => kernels.call(i, &cx.ins),
            None => ops::expr(node, &cx)?,
        };
        let lhs: Vec<&str> = node.outputs.iter().map(|o| names[*o].as_str()).collect();
        let lhs = if lhs.len() == 1 { lhs[0].to_string() } else { lhs.join(", ") };
        writeln!(body, "    {lhs} = {rhs}").unwrap();
        i += 1;
    }
    let outs: Vec<&str> = results.iter().map(|o| names[*o].as_str()).collect();
    let ret = if part == Part::Tuple { format!("({},)", outs.join(", ")) } else { outs.join(", ") };
    writeln!(body, "    return {ret}").unwrap();
    Ok(body)
}

/// One island: its compiled function (into `isl.defs`) and the line that calls it; it
/// returns the values it makes that are `used_after` it.
fn island(
    p: &Program,
    run: &[&Node],
    used_after: &dyn Fn(&ValueId) -> bool,
    names: &[String],
    isl: &mut Islands,
    tensors: &mut BTreeSet<String>,
    kernels: &Kernels,
) -> Result<String, EmitError> {
    let made: BTreeSet<ValueId> = run.iter().flat_map(|n| n.outputs.iter().copied()).collect();
    let mut ins: Vec<ValueId> = vec![];
    // Inputs read, and inputs whose shapes the arguments name (`x.shape[0]`).
    let shapes_named = run.iter().flat_map(|n| n.args.iter()).flat_map(passes::arg_inputs).map(|i| p.inputs[i]);
    for v in run.iter().flat_map(|n| n.inputs.iter().copied()).chain(shapes_named) {
        if !made.contains(&v) && !ins.contains(&v) {
            ins.push(v);
        }
    }
    let outs: Vec<ValueId> = made.iter().copied().filter(|v| used_after(v)).collect();
    let name = format!("{}_{}", isl.prefix, isl.count);
    isl.count += 1;
    let params: Vec<String> = ins.iter().map(|v| names[*v].clone()).collect();
    let body = block(p, run, names, &outs, Part::Island, None, tensors, kernels)?;
    isl.defs.push_str(&function(&name, &params, &body, Compile::Whole));
    let lhs: Vec<&str> = outs.iter().map(|v| names[*v].as_str()).collect();
    Ok(format!("    {} = {name}({})\n", lhs.join(", "), params.join(", ")))
}

fn fits_fn(k: usize, g: &Guard, p: &Program, kernels: Option<Target>, range: SizeRange) -> String {
    let params: Vec<String> = (0..p.inputs.len()).map(|i| input_name(p, i)).collect();
    let mut conds = vec![];
    if range != SizeRange::ALL {
        let elements = params.iter().map(|n| format!("{n}.size")).collect::<Vec<_>>().join(" + ");
        let above = range.above.map_or(String::new(), |a| format!("{a} < "));
        let upto = range.upto.map_or(String::new(), |u| format!(" <= {u}"));
        conds.push(format!("{above}{elements}{upto}"));
    }
    match kernels {
        Some(Target::Cuda) => conds.push("mx.default_device().type == mx.gpu and mx.cuda.is_available()".to_string()),
        Some(Target::Metal) => conds.push("mx.default_device().type == mx.gpu and mx.metal.is_available()".to_string()),
        Some(Target::Mlx) | None => {}
    }
    for (i, ig) in g.inputs.iter().enumerate() {
        let n = &params[i];
        conds.push(format!("{n}.dtype == {}", dtype(ig.dtype)));
        conds.push(format!("{n}.ndim == {}", ig.dims.len()));
        for (axis, d) in ig.dims.iter().enumerate() {
            if let Some(d) = d {
                conds.push(format!("{n}.shape[{axis}] == {d}"));
            }
        }
    }
    let dim = |t: DimTerm| format!("{}.shape[{}]", params[t.input], t.axis);
    for (a, b) in &g.ties {
        conds.push(format!("{} == {}", dim(*a), dim(*b)));
    }
    for (a, b) in &g.agree {
        conds.push(format!("{} == {}", a.render(&dim), b.render(&dim)));
    }
    for (a, b) in &g.within {
        conds.push(format!("{} <= {}", a.render(&dim), b.render(&dim)));
    }
    for s in &g.spans {
        conds.push(format!("{} <= {} <= {}", s.lo, dim(s.term), s.hi));
        if s.multiple > 1 {
            conds.push(format!("{} % {} == 0", dim(s.term), s.multiple));
        }
    }
    for (j, q) in p.signature.params.iter().enumerate() {
        if let Param::Literal { value, .. } = q {
            conds.push(literal_is(&param_name(p, j), value));
        }
    }
    let conds = if conds.is_empty() { vec!["True".to_string()] } else { conds };
    let all_params: Vec<String> = (0..p.signature.params.len()).map(|j| param_name(p, j)).collect();
    format!(
        "def _fits_{k}({}):\n    return (\n        {}\n    )\n\n\n",
        all_params.join(", "),
        conds.join("\n        and ")
    )
}

/// `name` holds the traced literal `v`, of its very type (`True` is not 1, nor `2` 2.0).
fn literal_is(name: &str, v: &serde_json::Value) -> String {
    let ty = match v {
        serde_json::Value::Null => return format!("{name} is None"),
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(n) if n.is_f64() => "float",
        serde_json::Value::Number(_) => "int",
        serde_json::Value::String(_) => "str",
        serde_json::Value::Array(_) => "list",
        serde_json::Value::Object(_) => "dict",
    };
    format!("(type({name}) is {ty} and {name} == {})", py_literal(v))
}

fn py_literal(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "None".into(),
        serde_json::Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        other => other.to_string(),
    }
}

/// Parameter list in `fn`'s order, keyword ones after `*`.
fn signature_params(p: &Program) -> Vec<String> {
    let mut out: Vec<String> =
        p.signature.params.iter().filter(|q| !q.keyword()).map(|q| q.name().to_string()).collect();
    let kw: Vec<String> = p.signature.params.iter().filter(|q| q.keyword()).map(|q| q.name().to_string()).collect();
    if !kw.is_empty() {
        out.push("*".into());
        out.extend(kw);
    }
    out
}

/// `verified`, `optimized` and `fits` with fn's signature, each handing its arguments on
/// by position to a private twin whose parameters have the inner names (no name of fn's
/// can shadow what the twins read).
fn dispatch(plan: &Plan, sig: &superopt_ir::Signature) -> String {
    let p0 = &plan.variants[0].1;
    let params = signature_params(p0);
    let given: Vec<String> = p0.signature.params.iter().map(|q| q.name().to_string()).collect();
    let given = given.join(", ");
    let inner: Vec<String> = (0..p0.signature.params.len()).map(|j| param_name(p0, j)).collect();
    let call_original: Vec<String> = p0
        .signature
        .params
        .iter()
        .zip(&inner)
        .map(|(q, n)| if q.keyword() { format!("{}={n}", q.name()) } else { n.clone() })
        .collect();
    let inner = inner.join(", ");
    let arrays: Vec<String> = (0..p0.inputs.len()).map(|i| input_name(p0, i)).collect();
    let wrap = |call: String| match sig.output_kind {
        superopt_ir::OutputKind::Array => call,
        superopt_ir::OutputKind::Tuple if p0.returned().len() == 1 => format!("({call},)"),
        superopt_ir::OutputKind::Tuple => format!("tuple({call})"),
        superopt_ir::OutputKind::List => format!("list({call})"),
    };
    let mut s = format!("def _verified({inner}):\n");
    for k in 0..plan.variants.len() {
        writeln!(s, "    if _fits_{k}({inner}):").unwrap();
        let call = format!("_program_{k}({})", arrays.join(", "));
        let call = if plan.variants[k].1.returned().len() == 1 && sig.output_kind != superopt_ir::OutputKind::Array {
            format!("[{call}]")
        } else {
            call
        };
        writeln!(s, "        return {}", wrap(call)).unwrap();
    }
    writeln!(s, "    return None\n\n").unwrap();
    write!(s, "def _optimized({inner}):\n    out = _verified({inner})\n").unwrap();
    writeln!(s, "    return _original()({}) if out is None else out\n\n", call_original.join(", ")).unwrap();
    let any: Vec<String> = (0..plan.variants.len()).map(|k| format!("_fits_{k}({inner})")).collect();
    write!(s, "def _fits({inner}):\n    return {}\n\n\n", any.join(" or ")).unwrap();
    let public = [
        ("verified", "_verified", "fn's outputs by a program verified for these inputs; None where none was."),
        ("optimized", "_optimized", "fn's outputs: by a verified program where one fits the inputs, else by fn."),
        ("fits", "_fits", "Whether `optimized` runs a verified program for these inputs (else the original `fn`)."),
    ];
    let declared = Declared::of(p0);
    if declared.is_some() {
        s.push_str(DECLARED_HELPERS);
    }
    for (name, twin, doc) in public {
        match &declared {
            Some(d) => s.push_str(&d.public(name, twin, doc, &given)),
            None => {
                write!(s, "def {name}({}):\n    \"\"\"{doc}\"\"\"\n    return {twin}({given})\n\n\n", params.join(", "))
                    .unwrap()
            }
        }
    }
    s
}

const DECLARED_HELPERS: &str = r#"_FN_DEFAULT = object()  # stands for a default of fn's this module cannot spell


def _is_default(v, d):
    return v is d or (type(v) is type(d) and v == d)


def _passed(*args, **kwargs):
    """The arguments given, less those left at a default only fn can spell (positional ones
    from the first such on: none after it can have been given)."""
    given = next((i for i, v in enumerate(args) if v is _FN_DEFAULT), len(args))
    return list(args[:given]), {k: v for k, v in kwargs.items() if v is not _FN_DEFAULT}


"#;

/// `fn`'s declared parameters, where the traces' are all among them: the public functions
/// take fn's signature (kinds and defaults), run the programs only where every parameter the
/// traces did not pass is at its default, and hand anything else to fn.
struct Declared<'a> {
    params: &'a [FnParam],
    traced: Vec<&'a str>,
}

impl<'a> Declared<'a> {
    /// The names the public functions read, which a parameter of fn's must not shadow.
    const READS: [&'static str; 7] =
        ["_FN_DEFAULT", "_is_default", "_passed", "_original", "_optimized", "_verified", "_fits"];

    fn of(p: &'a Program) -> Option<Declared<'a>> {
        let params = &p.signature.fn_params;
        let traced: Vec<&str> = p.signature.params.iter().map(|q| q.name()).collect();
        let known = |n: &&str| params.iter().any(|q| q.name == *n);
        let shadows = params.iter().any(|q| Self::READS.contains(&q.name.as_str()));
        (!params.is_empty() && !shadows && traced.iter().all(known)).then_some(Declared { params, traced })
    }

    /// `def name(<fn's parameters>)`: the twin where the untraced parameters are at their
    /// defaults, else what the twin gives on fn's path (`optimized` calls fn).
    fn public(&self, name: &str, twin: &str, doc: &str, given: &str) -> String {
        let mut conds = vec![];
        for q in self.params {
            let traced = self.traced.contains(&q.name.as_str());
            match (&q.default, traced) {
                (FnDefault::Literal { value }, false) => {
                    conds.push(format!("_is_default({}, {})", q.name, py_literal(value)))
                }
                (FnDefault::Opaque, false) => conds.push(format!("{} is _FN_DEFAULT", q.name)),
                (FnDefault::Opaque, true) => conds.push(format!("{} is not _FN_DEFAULT", q.name)),
                _ => {}
            }
        }
        let otherwise = match name {
            "optimized" => {
                let pos: Vec<&str> = self
                    .params
                    .iter()
                    .filter(|q| q.kind == ParamKind::PositionalOnly)
                    .map(|q| q.name.as_str())
                    .collect();
                let kw: Vec<String> = self
                    .params
                    .iter()
                    .filter(|q| q.kind != ParamKind::PositionalOnly)
                    .map(|q| format!("{0}={0}", q.name))
                    .collect();
                format!(
                    "    args, kwargs = _passed({})\n    return _original()(*args, **kwargs)\n",
                    [pos.join(", "), kw.join(", ")]
                        .iter()
                        .filter(|x| !x.is_empty())
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            "verified" => "    return None\n".to_string(),
            _ => "    return False\n".to_string(),
        };
        let mut s = format!("def {name}({}):\n    \"\"\"{doc}\"\"\"\n", self.signature());
        if conds.is_empty() {
            write!(s, "    return {twin}({given})\n\n\n").unwrap();
        } else {
            write!(s, "    if {}:\n        return {twin}({given})\n{otherwise}\n\n", conds.join(" and ")).unwrap();
        }
        s
    }

    /// fn's parameter list: `/` after the positional-only ones, `*` before the keyword-only.
    fn signature(&self) -> String {
        let mut out: Vec<String> = vec![];
        let mut last = None;
        for q in self.params {
            if last == Some(ParamKind::PositionalOnly) && q.kind != ParamKind::PositionalOnly {
                out.push("/".into());
            }
            if q.kind == ParamKind::KeywordOnly && last != Some(ParamKind::KeywordOnly) {
                out.push("*".into());
            }
            out.push(match &q.default {
                FnDefault::Required => q.name.clone(),
                FnDefault::Literal { value } => format!("{}={}", q.name, py_literal(value)),
                FnDefault::Opaque => format!("{}=_FN_DEFAULT", q.name),
            });
            last = Some(q.kind);
        }
        if last == Some(ParamKind::PositionalOnly) {
            out.push("/".into());
        }
        out.join(", ")
    }
}

fn fallback(s: &mut String, harness: &str) {
    write!(
        s,
        r#"_ORIGINAL = {harness:?}
_original_fn = None


def _original():
    """`fn` from the harness, for inputs that superopt did not verify this module for."""
    global _original_fn
    if _original_fn is None:
        spec = importlib.util.spec_from_file_location("_superopt_original", _ORIGINAL)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _original_fn = module.fn
    return _original_fn
"#
    )
    .unwrap();
}

/// The generated kernels `plan` calls, in the order the module numbers them (`_k{i}`).
pub fn kernel_calls(plan: &Plan) -> Vec<Call> {
    let mut calls: Vec<Call> = vec![];
    for n in plan.variants.iter().flat_map(|(_, p)| p.nodes.iter()) {
        if let Some(c) = Call::of_node(n) {
            if !calls.contains(&c) {
                calls.push(c);
            }
        }
    }
    calls
}

/// The generated kernels a plan calls, each defined once as `_k{i}`.
struct Kernels {
    calls: Vec<Call>,
}

impl Kernels {
    fn of(plan: &Plan) -> Kernels {
        Kernels { calls: kernel_calls(plan) }
    }

    fn target(&self) -> Option<Target> {
        self.calls.first().map(|c| c.target)
    }

    fn index(&self, node: &Node) -> Option<usize> {
        let c = Call::of_node(node)?;
        self.calls.iter().position(|k| *k == c)
    }

    /// `_k{i}(shape, inputs...)` for a row kernel, the shape taken from the first full-size
    /// input; `_k{i}(inputs...)` for a quantized one.
    fn call(&self, i: usize, ins: &[String]) -> String {
        let Some(k) = self.calls[i].rows() else { return format!("_k{i}({})", ins.join(", ")) };
        let full = k.inputs.iter().position(|o| o.layout == Layout::Full).unwrap_or(0);
        format!("_k{i}({}.shape, {})", ins[full], ins.join(", "))
    }

    fn definitions(&self) -> String {
        let Some(target) = self.target() else { return String::new() };
        let mut s = launch::preamble(target);
        for (i, c) in self.calls.iter().enumerate() {
            s.push_str(&c.launcher(i));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::safe_name;

    #[test]
    fn names_the_generated_code_reads_are_not_inner_names() {
        for unsafe_name in ["h", "key", "out", "mx", "tuple", "t0", "t12", "in3", "lit0", "_x"] {
            assert!(!safe_name(unsafe_name), "{unsafe_name}");
        }
        for fine in ["x", "t", "tx", "t0x", "inputs", "hidden", "keys", "weight"] {
            assert!(safe_name(fine), "{fine}");
        }
    }
}
