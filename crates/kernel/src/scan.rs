//! Recurrences as generated kernels: a loop whose every step updates a state array by the
//! same arithmetic (the gated delta rule's `S = S * exp(g); S += k (x) ((v - k.S) * beta)`,
//! a moving average...), unrolled by the trace into thousands of launches, becomes one.
//!
//! Threads run over every state axis but one, `axis`, the axis the step's reductions run
//! over: [`Scan::split`] threads of one warp share a line (element `k` is thread
//! `k % split`'s), keep it in registers and walk the steps in order, their reductions
//! finished by shuffles within the warp: it reads each step's operands where they lie ([`Access`]), computes
//! the step's values (kernel IR instructions; a value that varies along `axis` is computed
//! inside a loop over it, one that does not once per step) and writes each step's outputs
//! ([`StepOut`]); the final state is output 0. A step's reductions split their sums over
//! [`PARTS`] accumulators. [`lower`] finds such loops in a program.

use crate::c::{literal, Dialect};
use crate::ir::{Inst, Op, Reduce};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use superopt_ir::Dtype;

/// Where one operand of a step lies: element `(c_0, .., c_r)` of the state's frame at step
/// `t` is `base[offset + t * step + sum_a c_a * strides[a]]` (stride 0: not varying).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub dtype: Dtype,
    pub offset: i64,
    pub step: i64,
    pub strides: Vec<i64>,
}

/// A value every step writes: element `c` of the state's frame at step `t` goes to
/// `out[t * size + sum_a c_a * strides[a]]`, the output being `[steps, ..shape]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepOut {
    pub value: usize,
    pub dtype: Dtype,
    pub shape: Vec<i64>,
    pub strides: Vec<i64>,
}

impl StepOut {
    fn size(&self) -> i64 {
        self.shape.iter().product()
    }
}

/// A recurrence kernel (see the module doc).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scan {
    pub name: String,
    /// The state's shape.
    pub shape: Vec<i64>,
    /// The state's dtype: held in float32 registers, rounded to it each step (its update's
    /// cast, as the program rounds it), read and written in it.
    #[serde(default = "float32")]
    pub dtype: Dtype,
    /// The axis each thread walks (where the reductions run).
    pub axis: usize,
    pub steps: i64,
    /// Operand 0 is the initial state; `Op::Input(0)` reads the current one.
    pub operands: Vec<Access>,
    /// One step's arithmetic.
    pub insts: Vec<Inst>,
    /// The instruction whose value is the next state.
    pub next: usize,
    pub outputs: Vec<StepOut>,
}

fn float32() -> Dtype {
    Dtype::Float32
}

/// Accumulators per reduction: sums in `PARTS` interleaved parts, then added pairwise.
pub const PARTS: i64 = 8;

/// The longest line the threads of one warp keep in registers.
pub const MAX_LINE: i64 = 1024;

/// The elements of a line a thread keeps, where the line is long enough.
pub const PER_THREAD: i64 = 16;

/// How the instructions run: along the line (in a loop over it) or once per step, and in
/// which of the step's loops (`phase`: a reduction's value is ready after its loop).
#[derive(Clone, Debug)]
pub struct Plan {
    pub along: Vec<bool>,
    pub phase: Vec<usize>,
}

impl Scan {
    /// The length of a state line (along `axis`).
    pub fn line(&self) -> i64 {
        self.shape[self.axis]
    }

    /// The state's lines (the threads, [`Scan::split`] each).
    pub fn threads(&self) -> i64 {
        self.shape.iter().product::<i64>() / self.line().max(1)
    }

    /// Threads per line: enough that each keeps about [`PER_THREAD`] elements, a power of
    /// two within a warp that divides the line.
    pub fn split(&self) -> i64 {
        let mut split = 1;
        while split < 32 && self.line() % (2 * split) == 0 && self.line() / (2 * split) >= PER_THREAD {
            split *= 2;
        }
        split
    }

    /// Elements of the line each thread keeps.
    fn per_thread(&self) -> i64 {
        self.line() / self.split()
    }

    /// Which values vary along the line and in which loop each is ready; `None` where the
    /// kernel cannot run them: the next state not along the line, a reduction of a value
    /// that is not, or a value after the next state's loop that reads the old state.
    pub fn plan(&self) -> Option<Plan> {
        let mut along: Vec<bool> = Vec::with_capacity(self.insts.len());
        let mut phase: Vec<usize> = Vec::with_capacity(self.insts.len());
        for inst in &self.insts {
            let (a, p) = match inst.op {
                Op::Input(j) => (j == 0 || self.operands.get(j)?.strides[self.axis] != 0, 0),
                Op::Const(_) | Op::Len => (false, 0),
                Op::Reduce(_) => {
                    let x = *inst.args.first()?;
                    if !along[x] {
                        return None;
                    }
                    (false, phase[x] + 1)
                }
                _ => (inst.args.iter().any(|x| along[*x]), inst.args.iter().map(|x| phase[*x]).max().unwrap_or(0)),
            };
            along.push(a);
            phase.push(p);
        }
        // A value computed once per step is written once: not to an output laid along the line.
        if self.outputs.iter().any(|o| !along[o.value] && o.strides[self.axis] != 0) {
            return None;
        }
        let plan = Plan { along, phase };
        let last = self.phases(&plan);
        let ok = plan.along[self.next] && (plan.phase[self.next] + 1..last).all(|ph| !self.reads_old_state(&plan, ph));
        ok.then_some(plan)
    }

    /// How many loops a step runs.
    fn phases(&self, plan: &Plan) -> usize {
        (0..self.insts.len()).filter(|v| plan.along[*v]).map(|v| plan.phase[v] + 1).max().unwrap_or(1)
    }

    /// The values loop `ph` computes along the line (those it reduces, stores or writes,
    /// and what they need there), in order.
    fn in_loop(&self, plan: &Plan, ph: usize) -> Vec<usize> {
        let mut need = vec![false; self.insts.len()];
        let mut roots: Vec<usize> = self
            .insts
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(i.op, Op::Reduce(_)))
            .map(|(_, i)| i.args[0])
            .filter(|x| plan.phase[*x] == ph)
            .collect();
        roots.extend(self.outputs.iter().map(|o| o.value).filter(|v| plan.along[*v] && plan.phase[*v] == ph));
        if plan.phase[self.next] == ph {
            roots.push(self.next);
        }
        while let Some(v) = roots.pop() {
            if need[v] || !plan.along[v] || (v == self.next && ph > plan.phase[v]) {
                continue;
            }
            need[v] = true;
            roots.extend(self.insts[v].args.iter().copied());
        }
        (0..self.insts.len()).filter(|v| need[*v]).collect()
    }

    /// Whether loop `ph` would read the state as it was before this step's update.
    fn reads_old_state(&self, plan: &Plan, ph: usize) -> bool {
        self.in_loop(plan, ph).iter().any(|v| self.insts[*v].op == Op::Input(0) && *v != self.next)
    }
}

/// One line on what `s` computes.
pub fn describe(s: &Scan) -> String {
    let shape: Vec<String> = s.shape.iter().map(|d| d.to_string()).collect();
    format!(
        "{} steps of a recurrence on a {} state [{}], its lines along axis {} kept by {} thread(s) each \
         ({} operands, {} outputs)",
        s.steps,
        s.dtype.name(),
        shape.join(", "),
        s.axis,
        s.split(),
        s.operands.len(),
        s.outputs.len() + 1
    )
}

/// What differs between the CUDA and the Metal body beyond the [`Dialect`].
struct Lang<'a> {
    d: &'a dyn Dialect,
    thread: &'static str,
    unroll: &'static str,
    /// `v` of the lane `o` apart (xor) in the warp.
    shuffle: fn(&str, i64) -> String,
    /// The output element type's name for output `j`.
    out_type: fn(usize) -> String,
}

/// The flat offset of this thread's line start in an array with `strides` over the
/// state's axes (the line's own axis left out).
fn line_offset(s: &Scan, strides: &[i64]) -> String {
    let terms: Vec<String> = (0..s.shape.len())
        .filter(|a| *a != s.axis && strides[*a] != 0 && s.shape[*a] > 1)
        .map(|a| format!("c{a} * {}L", strides[a]))
        .collect();
    if terms.is_empty() {
        "0L".into()
    } else {
        terms.join(" + ")
    }
}

/// An operand's element at this step (and at `k` along the line where it varies there).
fn operand(s: &Scan, l: &Lang, j: usize) -> String {
    let a = &s.operands[j];
    let along = if a.strides[s.axis] != 0 { format!(" + k * {}L", a.strides[s.axis]) } else { String::new() };
    l.d.scalar_load(&format!("x{j}"), &format!("b{j} + t * {}L{along}", a.step))
}

/// The expression of instruction `v` (its arguments named `v{i}`).
fn expr(s: &Scan, l: &Lang, v: usize) -> String {
    let inst = &s.insts[v];
    let a = |i: usize| format!("v{}", inst.args[i]);
    match inst.op {
        Op::Input(0) => "s[i]".into(),
        Op::Input(j) => operand(s, l, j),
        Op::Const(c) => literal(l.d, c),
        Op::Len => literal(l.d, s.line() as f64),
        Op::Unary(u) => l.d.unary(u, &a(0)),
        Op::Binary(b) => crate::c::binary(l.d, b, &a(0), &a(1)),
        Op::Select => format!("({} != 0.0f ? {} : {})", a(0), a(1), a(2)),
        Op::Cast(d) => l.d.cast(d, &a(0)),
        Op::Reduce(_) => unreachable!("reductions are finished after their loop"),
    }
}

fn identity(l: &Lang, r: Reduce) -> String {
    match r {
        Reduce::Sum => "0.0f".into(),
        Reduce::Max => format!("(-{})", l.d.infinity()),
        Reduce::Min => l.d.infinity().into(),
    }
}

fn combine(r: Reduce, x: &str, y: &str) -> String {
    match r {
        Reduce::Sum => format!("({x} + {y})"),
        Reduce::Max => format!("so_max({x}, {y})"),
        Reduce::Min => format!("so_min({x}, {y})"),
    }
}

/// `parts` accumulators of `name` added pairwise.
fn pairwise(r: Reduce, name: &str, lo: i64, hi: i64) -> String {
    if hi - lo == 1 {
        return format!("{name}[{lo}]");
    }
    let mid = (lo + hi) / 2;
    combine(r, &pairwise(r, name, lo, mid), &pairwise(r, name, mid, hi))
}

fn parts(s: &Scan) -> i64 {
    let mut p = PARTS;
    while s.per_thread() % p != 0 {
        p /= 2;
    }
    p
}

/// Output `j`'s store of its value at this step (inside a loop: at `k` along the line).
fn store(s: &Scan, l: &Lang, j: usize, inside: bool) -> String {
    let o = &s.outputs[j];
    let along = if inside && o.strides[s.axis] != 0 { format!(" + k * {}L", o.strides[s.axis]) } else { String::new() };
    let at = format!("t * {}L + o{j}{along}", o.size());
    let only = if inside { "if (live) " } else { "if (live && part == 0) " };
    only.to_string() + &l.d.scalar_store(&(l.out_type)(j + 1), &format!("y{}", j + 1), &at, &format!("v{}", o.value))
}

/// The values computed once per step in phase `ph`, and the step outputs they complete.
fn step_values(s: &Scan, l: &Lang, plan: &Plan, ph: usize, out: &mut String) {
    for (v, inst) in s.insts.iter().enumerate() {
        if plan.along[v] || plan.phase[v] != ph || matches!(inst.op, Op::Reduce(_)) {
            continue;
        }
        writeln!(out, "    const float v{v} = {};", expr(s, l, v)).unwrap();
    }
    for (j, o) in s.outputs.iter().enumerate() {
        if !plan.along[o.value] && plan.phase[o.value] == ph {
            writeln!(out, "    {}", store(s, l, j, false)).unwrap();
        }
    }
}

/// Loop `ph` of a step: its values along the line, its reductions, the state's update.
fn step_loop(s: &Scan, l: &Lang, plan: &Plan, ph: usize, out: &mut String) {
    let p = parts(s);
    let reductions: Vec<(usize, Reduce)> = (0..s.insts.len())
        .filter_map(|v| match s.insts[v].op {
            Op::Reduce(r) if plan.phase[s.insts[v].args[0]] == ph => Some((v, r)),
            _ => None,
        })
        .collect();
    for (v, r) in &reductions {
        let id = identity(l, *r);
        writeln!(out, "    float a{v}[{p}];\n    for (int i = 0; i < {p}; ++i) a{v}[i] = {id};").unwrap();
    }
    writeln!(out, "{}    for (int i = 0; i < {}; ++i) {{", l.unroll, s.per_thread()).unwrap();
    writeln!(out, "      const int k = part + i * {};", s.split()).unwrap();
    if ph > plan.phase[s.next] {
        writeln!(out, "      const float v{} = s[i];  // the updated state", s.next).unwrap();
    }
    for v in s.in_loop(plan, ph) {
        writeln!(out, "      const float v{v} = {};", expr(s, l, v)).unwrap();
    }
    for (v, r) in &reductions {
        let x = format!("v{}", s.insts[*v].args[0]);
        let acc = format!("a{v}[i % {p}]");
        writeln!(out, "      {acc} = {};", combine(*r, &acc, &x)).unwrap();
    }
    for (j, o) in s.outputs.iter().enumerate() {
        if plan.along[o.value] && plan.phase[o.value] == ph {
            writeln!(out, "      {}", store(s, l, j, true)).unwrap();
        }
    }
    if plan.phase[s.next] == ph {
        writeln!(out, "      s[i] = v{};", s.next).unwrap();
    }
    writeln!(out, "    }}").unwrap();
    for (v, r) in &reductions {
        writeln!(out, "    float v{v} = {};", pairwise(*r, &format!("a{v}"), 0, p)).unwrap();
        let mut o = 1;
        while o < s.split() {
            writeln!(out, "    v{v} = {};", combine(*r, &format!("v{v}"), &(l.shuffle)(&format!("v{v}"), o))).unwrap();
            o *= 2;
        }
    }
}

/// The body both languages share.
fn body(s: &Scan, l: &Lang) -> String {
    let plan = s.plan().expect("a scan the kernel can run");
    let mut out = format!("  // {}: {}\n", s.name, describe(s));
    // Threads past the last line (their warps' shuffles need them) compute line 0's, unstored.
    // (`thread` is a Metal address space: the index is `tid`.)
    writeln!(out, "  const long tid = {};\n  const int part = int(tid % {}L);", l.thread, s.split()).unwrap();
    writeln!(out, "  const bool live = tid / {}L < {}L;", s.split(), s.threads()).unwrap();
    writeln!(out, "  long rest = live ? tid / {}L : 0L;", s.split()).unwrap();
    for a in (0..s.shape.len()).rev().filter(|a| *a != s.axis) {
        writeln!(out, "  const long c{a} = rest % {}L;\n  rest /= {}L;", s.shape[a], s.shape[a]).unwrap();
    }
    for (j, a) in s.operands.iter().enumerate() {
        writeln!(out, "  const long b{j} = {} + {}L;", line_offset(s, &a.strides), a.offset).unwrap();
    }
    for (j, o) in s.outputs.iter().enumerate() {
        writeln!(out, "  const long o{j} = {};", line_offset(s, &o.strides)).unwrap();
    }
    let (n, split) = (s.per_thread(), s.split());
    let stride0 = s.operands[0].strides[s.axis];
    let each = format!("for (int i = 0; i < {n}; ++i) {{\n    const int k = part + i * {split};\n   ");
    writeln!(out, "  float s[{n}];  // this thread's elements of its line of the state").unwrap();
    let load = l.d.scalar_load("x0", &format!("b0 + k * {stride0}L"));
    writeln!(out, "{}  {each} s[i] = {load};\n  }}", l.unroll).unwrap();
    writeln!(out, "  for (long t = 0; t < {}L; ++t) {{", s.steps).unwrap();
    for ph in 0..s.phases(&plan) {
        step_values(s, l, &plan, ph, &mut out);
        step_loop(s, l, &plan, ph, &mut out);
    }
    let last = s.insts.iter().enumerate().filter(|(v, _)| !plan.along[*v]).map(|(v, _)| plan.phase[v]).max();
    for ph in s.phases(&plan)..=last.unwrap_or(0) {
        step_values(s, l, &plan, ph, &mut out);
    }
    writeln!(out, "  }}").unwrap();
    let state = state_strides(s);
    writeln!(out, "  const long f = {};", line_offset(s, &state)).unwrap();
    let store = l.d.scalar_store(&(l.out_type)(0), "y0", &format!("f + k * {}L", state[s.axis]), "s[i]");
    writeln!(out, "{}  {each} if (live) {store}\n  }}", l.unroll).unwrap();
    out
}

/// Row-major strides of the state.
pub fn state_strides(s: &Scan) -> Vec<i64> {
    row_major(&s.shape)
}

/// Row-major strides of an array of `shape`.
pub fn row_major(shape: &[i64]) -> Vec<i64> {
    let mut strides = vec![1; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * shape[a + 1];
    }
    strides
}

/// The body for `mx.fast.cuda_kernel`, with [`crate::cuda::HEADER`]; output `j` has the
/// template type `O{j}`.
pub fn cuda_source(s: &Scan) -> String {
    let d = crate::cuda::Cuda { fast: false };
    let l = Lang {
        d: &d,
        thread: "long(blockIdx.x) * blockDim.x + threadIdx.x",
        unroll: "#pragma unroll\n",
        shuffle: |v, o| format!("__shfl_xor_sync(0xffffffffu, {v}, {o})"),
        out_type,
    };
    body(s, &l)
}

/// The body for `mx.fast.metal_kernel`, with [`crate::metal::HEADER`].
pub fn metal_source(s: &Scan) -> String {
    let l = Lang {
        d: &crate::metal::Metal,
        thread: "long(thread_position_in_grid.x)",
        unroll: "",
        shuffle: |v, o| format!("simd_shuffle_xor({v}, ushort({o}))"),
        out_type,
    };
    body(s, &l)
}

/// What MLX's CUDA backend wraps around [`cuda_source`], for compiling it without MLX
/// (see [`crate::cuda::mlx_module`]).
pub fn mlx_function(name: &str, s: &Scan) -> String {
    let mut params: Vec<String> =
        s.operands.iter().enumerate().map(|(j, a)| format!("const {}* x{j}", crate::cuda::ctype(a.dtype))).collect();
    let state = crate::cuda::ctype(s.dtype);
    params.push(format!("{state}* y0"));
    let mut types = vec![format!("  using O0 = {state};")];
    for (j, o) in s.outputs.iter().enumerate() {
        let c = crate::cuda::ctype(o.dtype);
        params.push(format!("{c}* y{}", j + 1));
        types.push(format!("  using O{} = {c};", j + 1));
    }
    format!(
        "__global__ void {name}(\n    {}) {{\n{}\n{}\n}}\n",
        params.join(",\n    "),
        types.join("\n"),
        cuda_source(s)
    )
}

fn out_type(j: usize) -> String {
    format!("O{j}")
}

/// The threads of a block.
pub const BLOCK: i64 = 64;

/// Python defining `_k{index}(x0, x1, ..)` for `target`: [`Scan::split`] threads per state line.
/// Needs the module's `_KERNEL_HEADER` ([`crate::launch::preamble`]).
pub fn launcher(s: &Scan, index: usize, target: crate::Target) -> String {
    let (make, source) = match target {
        crate::Target::Cuda => ("mx.fast.cuda_kernel", cuda_source(s)),
        crate::Target::Metal => ("mx.fast.metal_kernel", metal_source(s)),
        crate::Target::Mlx => return mlx_launcher(s, index),
    };
    let ins: Vec<String> = (0..s.operands.len()).map(|j| format!("x{j}")).collect();
    let outs: Vec<String> = (0..=s.outputs.len()).map(|j| format!("\"y{j}\"")).collect();
    let mut shapes = vec![tuple(&s.shape)];
    let mut dtypes = vec![format!("mx.{}", s.dtype.name())];
    let mut template = vec![format!("(\"O0\", mx.{})", s.dtype.name())];
    for (j, o) in s.outputs.iter().enumerate() {
        let mut shape = vec![s.steps];
        shape.extend(&o.shape);
        shapes.push(tuple(&shape));
        dtypes.push(format!("mx.{}", o.dtype.name()));
        template.push(format!("(\"O{}\", mx.{})", j + 1, o.dtype.name()));
    }
    let blocks = (s.threads() * s.split() + BLOCK - 1) / BLOCK;
    format!(
        r#"_K{index}_SOURCE = r"""
{source}"""
_K{index} = None  # made at the first call: only a GPU backend can


def _k{index}({args}):
    """{name}: {what}."""
    global _K{index}
    if _K{index} is None:
        _K{index} = {make}(
            name="superopt_{name}_{digest}",
            input_names=[{quoted}],
            output_names=[{outs}],
            source=_K{index}_SOURCE,
            header=_KERNEL_HEADER,
        )
    return {wrap}(_K{index}(
        inputs=[{args}],
        template=[{template}],
        grid=({grid}, 1, 1),
        threadgroup=({BLOCK}, 1, 1),
        output_shapes=[{shapes}],
        output_dtypes=[{dtypes}],
    )){first}


"#,
        args = ins.join(", "),
        quoted = ins.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", "),
        outs = outs.join(", "),
        name = s.name,
        what = describe(s),
        digest = crate::quantized::digest(&source),
        template = template.join(", "),
        grid = blocks * BLOCK,
        shapes = shapes.join(", "),
        dtypes = dtypes.join(", "),
        wrap = if s.outputs.is_empty() { "" } else { "tuple" },
        first = if s.outputs.is_empty() { "[0]" } else { "" },
    )
}

fn tuple(shape: &[i64]) -> String {
    let each: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("({}{})", each.join(", "), if shape.len() == 1 { "," } else { "" })
}

/// The kernel's meaning in plain MLX, in float32: the steps one after another on whole
/// arrays in the state's frame (an operand read by `mx.take` at its flat offsets), each
/// output stacked over the steps. A function `_k{index}(x0, x1, ..)`.
pub fn mlx_launcher(s: &Scan, index: usize) -> String {
    let ins: Vec<String> = (0..s.operands.len()).map(|j| format!("x{j}")).collect();
    let mut out = format!("def _k{index}({}):\n", ins.join(", "));
    writeln!(out, "    \"\"\"{}: its meaning in plain MLX (the steps one after another).\"\"\"", s.name).unwrap();
    writeln!(out, "    shape = {}", tuple(&s.shape)).unwrap();
    writeln!(out, "    def at(strides, offset):\n        i = mx.array(offset, dtype=mx.int64)").unwrap();
    writeln!(
        out,
        "        for a, (d, st) in enumerate(zip(shape, strides)):\n            if st != 0:\n                \
         i = i + (mx.arange(d, dtype=mx.int64) * st).reshape([d if b == a else 1 for b in range(len(shape))])\n        \
         return i"
    )
    .unwrap();
    for (j, a) in s.operands.iter().enumerate() {
        writeln!(out, "    f{j}, i{j} = x{j}.reshape(-1).astype(mx.float32), at({:?}, {})", a.strides, a.offset)
            .unwrap();
    }
    writeln!(out, "    s = mx.broadcast_to(mx.take(f0, i0), shape)").unwrap();
    let ys: Vec<String> = (1..=s.outputs.len()).map(|j| format!("y{j}")).collect();
    for y in &ys {
        writeln!(out, "    {y} = []").unwrap();
    }
    writeln!(out, "    for t in range({}):", s.steps).unwrap();
    for (v, inst) in s.insts.iter().enumerate() {
        let a = |i: usize| format!("v{}", inst.args[i]);
        let rhs = match inst.op {
            Op::Input(0) => "s".into(),
            Op::Input(j) => format!("mx.take(f{j}, i{j} + t * {})", s.operands[j].step),
            Op::Const(c) => format!("mx.array({}, dtype=mx.float32)", superopt_ir::print::py_float(c)),
            Op::Len => format!("mx.array({}.0, dtype=mx.float32)", s.line()),
            Op::Unary(u) => crate::reference::unary(u, &a(0)),
            Op::Binary(b) => crate::reference::binary(b, &a(0), &a(1)),
            Op::Select => format!("mx.where({} != 0, {}, {})", a(0), a(1), a(2)),
            Op::Reduce(r) => format!("mx.{}({}, axis={}, keepdims=True)", reduce_name(r), a(0), s.axis),
            Op::Cast(d) => format!("{}.astype(mx.{}).astype(mx.float32)", a(0), d.name()),
        };
        writeln!(out, "        v{v} = {rhs}").unwrap();
    }
    for (j, o) in s.outputs.iter().enumerate() {
        let full: Vec<i64> = (0..s.shape.len()).map(|a| if o.strides[a] != 0 { s.shape[a] } else { 1 }).collect();
        let perm = placed(o);
        let (v, shape) = (o.value, tuple(&o.shape));
        writeln!(
            out,
            "        y{}.append(mx.broadcast_to(v{v}, {}).transpose({perm:?}).reshape({shape}))",
            j + 1,
            tuple(&full)
        )
        .unwrap();
    }
    writeln!(out, "        s = mx.broadcast_to(v{}, shape)", s.next).unwrap();
    let state = match s.dtype {
        Dtype::Float32 => "s".to_string(),
        d => format!("s.astype(mx.{})", d.name()),
    };
    let mut results = vec![state];
    for (j, o) in s.outputs.iter().enumerate() {
        results.push(format!("mx.stack(y{}).astype(mx.{})", j + 1, o.dtype.name()));
    }
    writeln!(out, "    return {}\n\n", results.join(", ")).unwrap();
    out
}

/// The state's axes in the order output `o` lays them out (by its strides, largest first),
/// those it does not vary along last: a step's value in the state's frame, transposed so,
/// reshapes to the output's shape.
fn placed(o: &StepOut) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..o.strides.len()).collect();
    perm.sort_by_key(|a| (o.strides[*a] == 0, std::cmp::Reverse(o.strides[*a])));
    perm
}

fn reduce_name(r: Reduce) -> &'static str {
    match r {
        Reduce::Sum => "sum",
        Reduce::Max => "max",
        Reduce::Min => "min",
    }
}

pub mod lower;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Binary, Unary};

    /// An exponential moving average with a line sum: `s = s * a + x; y = sum(s)`.
    pub(crate) fn average() -> Scan {
        let i = |op: Op, args: &[usize]| Inst { op, args: args.to_vec() };
        Scan {
            name: "scan0".into(),
            shape: vec![2, 8],
            dtype: Dtype::Float32,
            axis: 1,
            steps: 5,
            operands: vec![
                Access { dtype: Dtype::Float32, offset: 0, step: 0, strides: vec![8, 1] },
                Access { dtype: Dtype::Float32, offset: 0, step: 16, strides: vec![8, 1] },
                Access { dtype: Dtype::Bfloat16, offset: 0, step: 2, strides: vec![1, 0] },
            ],
            insts: vec![
                i(Op::Input(0), &[]),
                i(Op::Input(2), &[]),
                i(Op::Unary(Unary::Exp), &[1]),
                i(Op::Binary(Binary::Mul), &[0, 2]),
                i(Op::Input(1), &[]),
                i(Op::Binary(Binary::Add), &[3, 4]),
                i(Op::Reduce(Reduce::Sum), &[5]),
            ],
            next: 5,
            outputs: vec![StepOut { value: 6, dtype: Dtype::Float32, shape: vec![2], strides: vec![1, 0] }],
        }
    }

    #[test]
    fn values_run_along_the_line_or_once_per_step() {
        let s = average();
        let plan = s.plan().unwrap();
        assert_eq!(plan.along, [true, false, false, true, true, true, false]);
        assert_eq!(plan.phase, [0, 0, 0, 0, 0, 0, 1]);
        let cuda = cuda_source(&s);
        assert!(cuda.contains("const float v2 = expf(v1);"), "{cuda}");
        assert!(cuda.contains("s[i] = v5;"), "{cuda}");
        assert!(cuda.contains("a6[i % 8] = (a6[i % 8] + v5);"), "{cuda}");
        assert!(!cuda.contains("__shfl_xor_sync"), "a line of 8 is one thread's: {cuda}");
        assert!(metal_source(&s).contains("if (live && part == 0) y1[t * 2L + o0] = O1(v6);"));
    }

    #[test]
    fn a_long_line_is_shared_by_threads_of_a_warp() {
        let mut s = average();
        s.shape = vec![2, 128];
        s.operands[0].strides = vec![128, 1];
        s.operands[1].strides = vec![128, 1];
        assert_eq!((s.split(), s.per_thread()), (8, 16));
        let cuda = cuda_source(&s);
        assert!(cuda.contains("const int k = part + i * 8;"), "{cuda}");
        assert!(cuda.contains("v6 = (v6 + __shfl_xor_sync(0xffffffffu, v6, 4));"), "{cuda}");
        assert!(metal_source(&s).contains("v6 = (v6 + simd_shuffle_xor(v6, ushort(1)));"));
        assert!(launcher(&s, 0, crate::Target::Cuda).contains("grid=(64, 1, 1)"), "2 lines of 8 threads: one block");
    }

    #[test]
    fn a_loop_after_the_update_that_reads_the_old_state_is_no_kernel() {
        let mut s = average();
        // y = sum(old state * update): the old state is gone once the line is updated.
        s.insts.push(Inst { op: Op::Binary(Binary::Mul), args: vec![0, 6] });
        s.insts.push(Inst { op: Op::Reduce(Reduce::Sum), args: vec![7] });
        s.outputs[0].value = 8;
        assert!(s.plan().is_none());
        // Reading the new state there is fine.
        s.insts[7].args = vec![5, 6];
        assert!(s.plan().is_some());
    }

    #[test]
    fn a_value_of_a_step_written_along_the_line_must_vary_along_it() {
        // The line sum, broadcast over the line: computed once per step, written once.
        let mut s = average();
        s.outputs[0].shape = vec![2, 8];
        s.outputs[0].strides = vec![8, 1];
        assert!(s.plan().is_none());
    }

    #[test]
    fn a_reduction_of_a_value_not_along_the_line_is_no_kernel() {
        let mut s = average();
        s.insts[6].args = vec![2];
        assert!(s.plan().is_none());
    }
}
