//! Aligning traces taken at several sizes into one program.
//!
//! Traces that share their structure become one program whose varying integers
//! are [`Dim`] expressions of the input shapes, guarded by the dimensions that
//! never varied. Traces that differ in structure (shape-dependent Python control
//! flow) or hold an integer no [`Dim`] form explains stay one program per size.

use superopt_ir::{Arg, ConstData, Dim, DimTerm, Guard, InputGuard, Node, Op, Plan, Program, ScalarExpr, Span};

/// Aligns `traces` (one per size, same order as the sizes) into a plan: one
/// general program, else one per size. `reference` picks the trace whose
/// concrete shapes the general program keeps.
pub fn align(traces: &[Program], reference: usize) -> Plan {
    match general(traces, reference) {
        Ok((program, guard)) => Plan { variants: vec![(guard, program)], per_size_because: None },
        Err(why) => Plan {
            variants: traces.iter().map(|p| (Guard::exact(&input_types(p)), p.clone())).collect(),
            per_size_because: Some(why),
        },
    }
}

pub fn input_types(p: &Program) -> Vec<(Vec<i64>, superopt_ir::Dtype)> {
    p.inputs.iter().map(|i| (p.value(*i).shape.clone(), p.value(*i).dtype)).collect()
}

fn general(traces: &[Program], reference: usize) -> Result<(Program, Guard), String> {
    let restored;
    let traces = if traces.iter().all(|t| t.nodes.len() == traces[0].nodes.len()) {
        traces // nothing left out: no copies of 60k-node traces
    } else {
        restored = restore_no_ops(traces);
        restored.as_slice()
    };
    let first = &traces[0];
    for t in &traces[1..] {
        same_structure(first, t)?;
    }
    let shapes: Vec<Vec<Vec<i64>>> =
        traces.iter().map(|t| input_types(t).into_iter().map(|(s, _)| s).collect()).collect();
    let mut guard = derive_guard(traces, &shapes);
    let mut fit = Fit { shapes: &shapes, varying: representatives(&guard), agree: vec![] };
    let mut out = traces[reference].clone();
    for (k, node) in out.nodes.iter_mut().enumerate() {
        let per_trace: Vec<&[Arg]> = traces.iter().map(|t| t.nodes[k].args.as_slice()).collect();
        node.args = fit.args(&per_trace).map_err(|e| format!("{} node #{k}: {e}", node.op))?;
    }
    for (k, c) in out.constants.iter_mut().enumerate() {
        let per_trace: Vec<&ConstData> = traces.iter().map(|t| &t.constants[k].data).collect();
        let dtype = traces[reference].value(c.value).dtype;
        c.data = fit.constant(&per_trace, dtype)?;
    }
    guard.within = slices_inside(&out, traces, &mut fit)?;
    guard.agree = fit.agree;
    Ok((out, guard))
}

/// Whether `lo <= hi` at any shapes: both constant (and held), one form apart by a
/// constant, or a constant below a product of dims.
fn always(lo: &Dim, hi: &Dim) -> bool {
    let same_form = lo.terms == hi.terms && lo.num == hi.num && lo.den == hi.den;
    let under_product = lo.terms.is_empty() && hi.num > 0 && hi.offset >= lo.offset;
    same_form && hi.offset >= lo.offset || under_product
}

/// Each slice's bounds inside its input along every axis where one of them varies: `0 <=
/// start <= stop <= n` (a negative step: `-1 <= stop <= start <= n - 1`), kept where it is
/// not constant and held in every trace. Past them Python clips the slice, and the
/// program's shapes would no longer hold (a KV cache's next position past its capacity).
fn slices_inside(out: &Program, traces: &[Program], fit: &mut Fit) -> Result<Vec<(Dim, Dim)>, String> {
    let shapes = fit.shapes;
    let mut within: Vec<(Dim, Dim)> = vec![];
    let mut keep = |lo: Dim, hi: Dim| {
        let held = shapes.iter().all(|s| lo.eval(s).zip(hi.eval(s)).is_some_and(|(a, b)| a <= b));
        if held && !always(&lo, &hi) && !within.contains(&(lo.clone(), hi.clone())) {
            within.push((lo, hi));
        }
    };
    for (k, node) in out.nodes.iter().enumerate() {
        let Some(first) = node.op.bounds_at() else { continue };
        let (Some(starts), Some(stops)) = (node.args[first].list(), node.args.get(first + 1).and_then(Arg::list))
        else {
            continue;
        };
        let Some(steps) = node.args.get(first + 2).and_then(Arg::const_ints) else { continue };
        for (axis, step) in steps.iter().enumerate() {
            let (Some(a), Some(b)) = (starts.get(axis).and_then(Arg::int), stops.get(axis).and_then(Arg::int)) else {
                continue;
            };
            let sizes: Vec<i64> = traces.iter().map(|t| t.value(t.nodes[k].inputs[0]).shape[axis]).collect();
            let fixed = a.as_const().is_some() && b.as_const().is_some() && sizes.windows(2).all(|w| w[0] == w[1]);
            if fixed {
                continue;
            }
            // Its other forms must agree too (the guard then checks the one the traces meant).
            let n = fit.dim(&sizes).ok_or_else(|| {
                format!("{} node #{k}: its input's length {sizes:?} along axis {axis} follows no form", node.op)
            })?;
            if *step > 0 {
                keep(Dim::constant(0), a.clone());
                keep(a.clone(), b.clone());
                keep(b.clone(), n);
            } else {
                // A stop of -1 (to the start) emits as no stop: a moving one must stay >= 0.
                keep(Dim::constant(if b.as_const().is_some() { -1 } else { 0 }), b.clone());
                keep(b.clone(), a.clone());
                keep(a.clone(), Dim { offset: n.offset - 1, ..n });
            }
        }
    }
    Ok(within)
}

/// The traces, each given back the operations MLX left out of it because they did nothing
/// at its size (a broadcast to the shape it had, a reshape to it, a slice of all of it: a
/// batch of 1, say), where the longest trace has them and the others then match it; as
/// they were otherwise.
fn restore_no_ops(traces: &[Program]) -> Vec<Program> {
    let Some(long) = traces.iter().max_by_key(|t| t.nodes.len()) else { return vec![] };
    let restored: Option<Vec<Program>> = traces
        .iter()
        .map(|t| if t.nodes.len() == long.nodes.len() { Some(t.clone()) } else { with_no_ops(long, t) })
        .collect();
    restored.unwrap_or_else(|| traces.to_vec())
}

/// `short` with `long`'s value numbering, its nodes in `long`'s order, and each node of
/// `long` it lacks as that node's no-op (its output is its input); None where some node it
/// lacks is not one MLX leaves out as a no-op, or the rest differ.
fn with_no_ops(long: &Program, short: &Program) -> Option<Program> {
    if long.inputs.len() != short.inputs.len() || long.constants.len() != short.constants.len() {
        return None;
    }
    let mut map: Vec<Option<usize>> = vec![None; long.values.len()];
    let mut values = long.values.clone();
    let mut constants = long.constants.clone();
    for (a, b) in long.inputs.iter().zip(&short.inputs) {
        (map[*a], values[*a]) = (Some(*b), short.value(*b).clone());
    }
    for (c, d) in constants.iter_mut().zip(&short.constants) {
        (map[c.value], values[c.value], c.data) = (Some(d.value), short.value(d.value).clone(), d.data.clone());
    }
    let (mut nodes, mut j) = (Vec::with_capacity(long.nodes.len()), 0);
    for n in &long.nodes {
        let ins: Vec<usize> = n.inputs.iter().map(|i| map[*i]).collect::<Option<_>>()?;
        let same = short.nodes.get(j).filter(|m| m.op == n.op && m.inputs == ins && m.outputs.len() == n.outputs.len());
        let (args, outs) = match same {
            Some(m) => {
                j += 1;
                (m.args.clone(), m.outputs.clone())
            }
            None => {
                let v = short.value(*ins.first()?);
                (no_op_args(n.op, &v.shape)?, vec![ins[0]])
            }
        };
        if outs.len() != n.outputs.len() {
            return None;
        }
        for (o, p) in n.outputs.iter().zip(&outs) {
            (map[*o], values[*o]) = (Some(*p), short.value(*p).clone());
        }
        nodes.push(Node { args, ..n.clone() });
    }
    let outputs_match = long.outputs.iter().map(|o| map[*o]).eq(short.outputs.iter().map(|o| Some(*o)));
    (j == short.nodes.len() && outputs_match).then(|| Program {
        values,
        constants,
        nodes,
        signature: short.signature.clone(),
        ..long.clone()
    })
}

/// The arguments of `op` that leave an input of `shape` as it is, for the operations MLX
/// leaves out where they would (`broadcast_to`, `reshape` and a whole slice).
fn no_op_args(op: Op, shape: &[i64]) -> Option<Vec<Arg>> {
    match op {
        Op::Broadcast | Op::Reshape => Some(vec![Arg::ints(shape)]),
        Op::Slice => Some(vec![Arg::ints(&vec![0; shape.len()]), Arg::ints(shape), Arg::ints(&vec![1; shape.len()])]),
        _ => None,
    }
}

fn same_structure(a: &Program, b: &Program) -> Result<(), String> {
    if a.nodes.len() != b.nodes.len() {
        return Err(format!(
            "the traces differ in length ({} vs {} primitives): fn's control flow depends on shapes",
            a.nodes.len(),
            b.nodes.len()
        ));
    }
    if a.signature != b.signature {
        return Err("the traces differ in their non-array arguments or outputs".into());
    }
    if a.inputs != b.inputs || a.outputs != b.outputs || a.values.len() != b.values.len() {
        return Err("the traces differ in their inputs or outputs".into());
    }
    if a.values.iter().zip(&b.values).any(|(x, y)| x.dtype != y.dtype || x.shape.len() != y.shape.len()) {
        return Err("the traces differ in dtypes or ranks".into());
    }
    for (k, (x, y)) in a.nodes.iter().zip(&b.nodes).enumerate() {
        if x.op != y.op || x.inputs != y.inputs || x.outputs != y.outputs || x.args.len() != y.args.len() {
            return Err(format!("the traces differ at primitive #{k} ({} vs {})", x.op, y.op));
        }
    }
    if a.constants.len() != b.constants.len() || a.constants.iter().zip(&b.constants).any(|(x, y)| x.value != y.value) {
        return Err("the traces differ in their constants".into());
    }
    Ok(())
}

fn derive_guard(traces: &[Program], shapes: &[Vec<Vec<i64>>]) -> Guard {
    let types = input_types(&traces[0]);
    let inputs: Vec<InputGuard> = types
        .iter()
        .enumerate()
        .map(|(i, (s, dtype))| InputGuard {
            dtype: *dtype,
            dims: (0..s.len())
                .map(|a| {
                    let vals: Vec<i64> = shapes.iter().map(|t| t[i][a]).collect();
                    vals.windows(2).all(|w| w[0] == w[1]).then_some(vals[0])
                })
                .collect(),
        })
        .collect();
    let mut guard = Guard { inputs, ties: vec![], agree: vec![], within: vec![], steps: vec![], spans: vec![] };
    let varying = guard.varying();
    let seq = |t: &DimTerm| -> Vec<i64> { shapes.iter().map(|s| s[t.input][t.axis]).collect() };
    guard.spans = varying.iter().map(|t| Span::of(*t, &seq(t))).collect();
    for (k, a) in varying.iter().enumerate() {
        if let Some(b) = varying[..k].iter().find(|b| seq(b) == seq(a)) {
            guard.ties.push((*b, *a));
        }
    }
    guard
}

/// Varying dimensions with one representative per tie.
fn representatives(g: &Guard) -> Vec<DimTerm> {
    g.varying().into_iter().filter(|t| !g.ties.iter().any(|(_, b)| b == t)).collect()
}

/// Fits the traced integers to forms of the varying dimensions, and keeps every other form
/// that fitted one of them as well: the guard's `agree`.
struct Fit<'a> {
    shapes: &'a [Vec<Vec<i64>>],
    varying: Vec<DimTerm>,
    agree: Vec<(Dim, Dim)>,
}

impl Fit<'_> {
    /// The first form that explains `vals`; the others become agreements.
    fn dim(&mut self, vals: &[i64]) -> Option<Dim> {
        let mut all = Dim::fits(vals, self.shapes, &self.varying).into_iter();
        let first = all.next()?;
        for other in all {
            self.must_agree(first.clone(), other);
        }
        Some(first)
    }

    /// Keeps `a == b` unless it always holds (the same product) or is kept already.
    fn must_agree(&mut self, a: Dim, b: Dim) {
        let sorted = |d: &Dim| {
            let mut t = d.terms.clone();
            t.sort();
            (t, d.num, d.den, d.offset)
        };
        if sorted(&a) != sorted(&b) && !self.agree.contains(&(a.clone(), b.clone())) {
            self.agree.push((a, b));
        }
    }

    fn args(&mut self, per_trace: &[&[Arg]]) -> Result<Vec<Arg>, String> {
        (0..per_trace[0].len())
            .map(|i| {
                let items: Vec<&Arg> = per_trace.iter().map(|a| &a[i]).collect();
                self.arg(&items)
            })
            .collect()
    }

    fn arg(&mut self, items: &[&Arg]) -> Result<Arg, String> {
        match items[0] {
            Arg::Int(_) => {
                let vals: Option<Vec<i64>> = items.iter().map(|a| a.int().and_then(Dim::as_const)).collect();
                let vals = vals.ok_or("an integer argument changes kind across traces")?;
                self.dim(&vals).map(Arg::Int).ok_or_else(|| {
                    format!("the integer argument {vals:?} is no product, quotient or offset of the input dimensions")
                })
            }
            Arg::List(first) => {
                let lists: Option<Vec<&[Arg]>> = items.iter().map(|a| a.list()).collect();
                let lists = lists
                    .filter(|l| l.iter().all(|x| x.len() == first.len()))
                    .ok_or("a list argument changes length across traces")?;
                Ok(Arg::List(self.args(&lists)?))
            }
            Arg::Float(_) if items.iter().all(|a| matches!(a, Arg::Float(f) if f.fract() == 0.0 && f.abs() < 1e15)) => {
                // Integral floats (arange bounds) may follow the shapes too.
                let vals: Vec<i64> = items.iter().map(|a| if let Arg::Float(f) = a { *f as i64 } else { 0 }).collect();
                if vals.windows(2).all(|w| w[0] == w[1]) && items.iter().all(|a| *a == items[0]) {
                    return Ok(items[0].clone());
                }
                self.dim(&vals)
                    .map(Arg::Int)
                    .ok_or_else(|| format!("the argument {:?} changes across traces", items[0]))
            }
            other => {
                if items.iter().all(|a| *a == other) {
                    Ok(other.clone())
                } else {
                    Err(format!("the argument {other:?} changes across traces"))
                }
            }
        }
    }
}

/// How a scalar constant follows a dim.
#[derive(Clone, Copy, PartialEq)]
enum Form {
    Recip,
    Rsqrt,
    Of,
}

impl Form {
    const ALL: [Form; 3] = [Form::Recip, Form::Rsqrt, Form::Of];

    fn value(self, d: f64) -> f64 {
        match self {
            Form::Recip => 1.0 / d,
            Form::Rsqrt => d.powf(-0.5),
            Form::Of => d,
        }
    }

    fn expr(self, dim: Dim) -> ScalarExpr {
        match self {
            Form::Recip => ScalarExpr::Recip { dim },
            Form::Rsqrt => ScalarExpr::Rsqrt { dim },
            Form::Of => ScalarExpr::Of { dim },
        }
    }
}

/// `d * d`.
fn squared(d: &Dim) -> Dim {
    Dim { terms: [d.terms.clone(), d.terms.clone()].concat(), num: 1, den: 1, offset: 0 }
}

impl Fit<'_> {
    /// A scalar constant that follows the shapes (`1/n`, `1/sqrt(d)`, `n`); other explanations
    /// become agreements (the same value only where their dims match).
    fn constant(&mut self, per_trace: &[&ConstData], dtype: superopt_ir::Dtype) -> Result<ConstData, String> {
        if per_trace.iter().all(|c| *c == per_trace[0]) {
            return Ok(per_trace[0].clone());
        }
        let vals: Option<Vec<f64>> = per_trace
            .iter()
            .map(|c| match c {
                ConstData::Scalar { expr: ScalarExpr::Lit { v } } => Some(*v),
                _ => None,
            })
            .collect();
        let vals = vals.ok_or("an array constant changes across traces")?;
        let mut found: Vec<(Form, Dim)> = vec![];
        for dim in candidate_dims(&self.varying) {
            let ds: Vec<f64> = self.shapes.iter().map(|s| dim.eval(s).unwrap_or(0) as f64).collect();
            for form in Form::ALL {
                if ds.iter().zip(&vals).all(|(d, v)| dtype.round(form.value(*d)) == *v) {
                    found.push((form, dim.clone()));
                }
            }
        }
        let Some((form, dim)) = found.first().cloned() else {
            return Err(format!("the scalar constant {vals:?} changes across traces in a way superopt cannot express"));
        };
        for (other, d) in &found[1..] {
            let pair = match (form, *other) {
                (a, b) if a == b => (dim.clone(), d.clone()),
                (Form::Rsqrt, Form::Recip) => (dim.clone(), squared(d)),
                (Form::Recip, Form::Rsqrt) => (squared(&dim), d.clone()),
                _ => return Err(format!("the scalar constant {vals:?} has forms the traces cannot tell apart")),
            };
            self.must_agree(pair.0, pair.1);
        }
        Ok(ConstData::Scalar { expr: form.expr(dim) })
    }
}

/// Dimensions and products of two, as scalar constants use them (`1/n`, `1/sqrt(d)`).
fn candidate_dims(varying: &[DimTerm]) -> Vec<Dim> {
    let mut out = vec![];
    for (k, a) in varying.iter().enumerate() {
        out.push(Dim { terms: vec![*a], num: 1, den: 1, offset: 0 });
        for b in &varying[k..] {
            out.push(Dim { terms: vec![*a, *b], num: 1, den: 1, offset: 0 });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use superopt_ir::Op;
    use superopt_ir::{Constant, Dtype, Node, OutputKind, Signature, Value};

    /// mean over the last axis of x: (B, D) -> (B, 1) as MLX traces it.
    fn mean_trace(b: i64, d: i64) -> Program {
        let f = Dtype::Float32;
        let v = |shape: Vec<i64>| Value { shape, dtype: f };
        let ints = Arg::ints;
        Program {
            values: vec![v(vec![b, d]), v(vec![]), v(vec![b, 1]), v(vec![b, 1]), v(vec![b, 1])],
            inputs: vec![0],
            constants: vec![Constant {
                value: 1,
                data: ConstData::Scalar { expr: ScalarExpr::Lit { v: f.round(1.0 / d as f64) } },
            }],
            nodes: vec![
                Node {
                    op: Op::Reduce,
                    args: vec![Arg::Int(Dim::constant(2)), ints(&[1])],
                    inputs: vec![0],
                    outputs: vec![2],
                },
                Node { op: Op::Broadcast, args: vec![ints(&[b, 1])], inputs: vec![1], outputs: vec![3] },
                Node { op: Op::Multiply, args: vec![], inputs: vec![2, 3], outputs: vec![4] },
            ],
            outputs: vec![4],
            signature: Signature::returning(OutputKind::Array),
        }
    }

    #[test]
    fn varying_dims_become_expressions() {
        let traces = [mean_trace(2, 8), mean_trace(4, 64), mean_trace(16, 512)];
        let plan = align(&traces, 1);
        assert!(plan.per_size_because.is_none());
        let (guard, program) = &plan.variants[0];
        assert_eq!(guard.inputs[0].dims, vec![None, None]);
        let shape = program.nodes[1].args[0].list().unwrap();
        assert_eq!(shape[0].int().unwrap().to_string(), "in0.shape[0]");
        assert_eq!(shape[1].int().unwrap().as_const(), Some(1));
        let ConstData::Scalar { expr: ScalarExpr::Recip { dim } } = &program.constants[0].data else {
            panic!("the mean's scale is 1 / n: {:?}", program.constants[0].data)
        };
        assert_eq!(dim.to_string(), "in0.shape[1]");
    }

    #[test]
    fn a_program_holds_only_for_lengths_the_traces_vouch_for() {
        // B traced at 2, 4, 16 and D at 8, 64, 512: between the least and the most, multiples of 2 and 8.
        let mut guard = align(&[mean_trace(2, 8), mean_trace(4, 64), mean_trace(16, 512)], 1).variants[0].0.clone();
        let f = superopt_ir::Dtype::Float32;
        assert!(guard.admits(&[(vec![8, 256], f)]));
        assert!(guard.admits(&[(vec![2, 512], f)]), "the traced ends themselves");
        assert!(!guard.admits(&[(vec![32, 256], f)]), "past the largest traced B");
        assert!(!guard.admits(&[(vec![8, 1024], f)]), "past the largest traced D");
        assert!(!guard.admits(&[(vec![8, 100], f)]), "D not a multiple of 8");
        assert!(!guard.admits(&[(vec![1, 8], f)]), "below the least traced B");
        // A step dim takes every value in a decode loop: its range holds, not its multiple.
        guard.set_steps(&[DimTerm { input: 0, axis: 1 }]);
        assert!(guard.admits(&[(vec![8, 100], f)]));
        assert!(!guard.admits(&[(vec![8, 1000], f)]), "past the largest traced step");
        assert!(!guard.admits(&[(vec![7, 100], f)]), "a near miss: B is no step");
    }

    #[test]
    fn forms_the_traces_cannot_tell_apart_must_agree() {
        // D = 8 B in every trace: the mean's shape (B, 1) is B or D / 8, so the program holds only there.
        let traces = [mean_trace(2, 16), mean_trace(4, 32), mean_trace(16, 128)];
        let guard = &align(&traces, 1).variants[0].0;
        let agree: Vec<String> = guard.agree.iter().map(|(a, b)| format!("{a} == {b}")).collect();
        assert_eq!(agree, ["in0.shape[0] == in0.shape[1] // 8"]);
        let f = superopt_ir::Dtype::Float32;
        assert!(guard.admits(&[(vec![6, 48], f)]));
        assert!(!guard.admits(&[(vec![6, 64], f)]), "B and D / 8 disagree");
        let apart = [mean_trace(2, 8), mean_trace(4, 64), mean_trace(16, 512)];
        assert!(align(&apart, 1).variants[0].0.agree.is_empty(), "a near miss: the traces tell B from D");
    }

    #[test]
    fn fixed_dims_are_guarded() {
        let traces = [mean_trace(2, 8), mean_trace(4, 8), mean_trace(16, 8)];
        let plan = align(&traces, 1);
        let guard = &plan.variants[0].0;
        assert_eq!(guard.inputs[0].dims, vec![None, Some(8)]);
    }

    #[test]
    fn structural_difference_keeps_sizes_apart() {
        let mut large = mean_trace(16, 512);
        large.nodes.pop();
        let plan = align(&[mean_trace(2, 8), mean_trace(4, 64), large], 1);
        let why = plan.per_size_because.expect("per-size programs");
        assert_eq!(plan.variants.len(), 3);
        assert!(why.contains("differ"), "{why}");
    }

    /// x (B, D) plus s (1, D) broadcast to x's shape by `op` (a Broadcast, or an Exp for a
    /// near miss), as MLX traces it; at `omit` without that node, as MLX traces a no-op.
    fn plus_trace(b: i64, op: Op, omit: bool) -> Program {
        let v = |shape: Vec<i64>| Value { shape, dtype: Dtype::Float32 };
        let mut values = vec![v(vec![b, 8]), v(vec![1, 8]), v(vec![b, 8]), v(vec![b, 8])];
        let args = if op == Op::Broadcast { vec![Arg::ints(&[b, 8])] } else { vec![] };
        let mut nodes = vec![
            Node { op, args, inputs: vec![1], outputs: vec![2] },
            Node { op: Op::Add, args: vec![], inputs: vec![0, 2], outputs: vec![3] },
        ];
        if omit {
            values.pop();
            nodes = vec![Node { op: Op::Add, args: vec![], inputs: vec![0, 1], outputs: vec![2] }];
        }
        let signature = Signature::returning(OutputKind::Array);
        let outputs = vec![values.len() - 1];
        Program { values, inputs: vec![0, 1], constants: vec![], nodes, outputs, signature }
    }

    /// `x[:4] + s` for x (B, 8): at B = 4 MLX leaves the whole slice out.
    fn slice_trace(b: i64) -> Program {
        let v = |shape: Vec<i64>| Value { shape, dtype: Dtype::Float32 };
        let add = |inputs: Vec<usize>, out: usize| Node { op: Op::Add, args: vec![], inputs, outputs: vec![out] };
        let signature = Signature::returning(OutputKind::Array);
        let (values, nodes) = if b == 4 {
            (vec![v(vec![4, 8]), v(vec![1, 8]), v(vec![4, 8])], vec![add(vec![0, 1], 2)])
        } else {
            let args = vec![Arg::ints(&[0, 0]), Arg::ints(&[4, 8]), Arg::ints(&[1, 1])];
            let slice = Node { op: Op::Slice, args, inputs: vec![0], outputs: vec![2] };
            (vec![v(vec![b, 8]), v(vec![1, 8]), v(vec![4, 8]), v(vec![4, 8])], vec![slice, add(vec![2, 1], 3)])
        };
        let outputs = vec![values.len() - 1];
        Program { values, inputs: vec![0, 1], constants: vec![], nodes, outputs, signature }
    }

    #[test]
    fn a_whole_slice_left_out_at_one_size_is_restored() {
        let plan = align(&[slice_trace(4), slice_trace(6), slice_trace(16)], 1);
        assert!(plan.per_size_because.is_none(), "{:?}", plan.per_size_because);
        let (guard, program) = &plan.variants[0];
        assert_eq!(program.nodes[0].op, Op::Slice);
        let f = Dtype::Float32;
        assert!(guard.admits(&[(vec![10, 8], f), (vec![1, 8], f)]));
        let inside: Vec<String> = guard.within.iter().map(|(a, b)| format!("{a} <= {b}")).collect();
        assert_eq!(inside, ["4 <= in0.shape[0]"], "past it Python would clip the slice");
    }

    #[test]
    fn a_no_op_left_out_at_batch_one_is_restored() {
        let traces = [
            plus_trace(1, Op::Broadcast, true),
            plus_trace(4, Op::Broadcast, false),
            plus_trace(16, Op::Broadcast, false),
        ];
        let plan = align(&traces, 1);
        assert!(plan.per_size_because.is_none(), "{:?}", plan.per_size_because);
        let (guard, program) = &plan.variants[0];
        assert_eq!(program.nodes[0].args[0].list().unwrap()[0].int().unwrap().to_string(), "in0.shape[0]");
        assert!(guard.admits(&[(vec![1, 8], Dtype::Float32), (vec![1, 8], Dtype::Float32)]));
        assert!(guard.admits(&[(vec![7, 8], Dtype::Float32), (vec![1, 8], Dtype::Float32)]));
        // A near miss: an Exp is no operation MLX leaves out, so the sizes stay apart.
        let traces = [plus_trace(1, Op::Exp, true), plus_trace(4, Op::Exp, false), plus_trace(16, Op::Exp, false)];
        let why = align(&traces, 1).per_size_because.expect("per-size programs");
        assert!(why.contains("differ in length"), "{why}");
    }

    #[test]
    fn unexplained_constant_keeps_sizes_apart() {
        let mut t = [mean_trace(2, 8), mean_trace(4, 64), mean_trace(16, 512)];
        t[2].constants[0].data = ConstData::Scalar { expr: ScalarExpr::Lit { v: 0.123 } };
        assert!(align(&t, 1).per_size_because.is_some());
    }
}
