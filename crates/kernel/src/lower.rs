//! Lowering to generated kernels: the regions of a program that one kernel can compute
//! (elementwise chains, reductions over the last axis with what comes before and after
//! them, MLX's fused norms and softmax) become `Kernel` nodes ([`Call`]).
//!
//! It may touch: unary/binary/select primitives on float arrays, float casts, `Broadcast`
//! to the region's shape, sum/max/min `Reduce` over the last axis, `Softmax`,
//! `LogSumExp`, `RMSNorm`, `LayerNorm`; and, through [`crate::quantized::lower`], affine
//! `GatherQMM` with a SwiGLU over gate/up pairs. Everything else stays as it is. A region's
//! operands must each be the region's full shape, one value per row, one per column
//! or a scalar; its results full or one per row.

use crate::ir::{computable, Invalid};
use crate::{library, params, Binary, Builder, Call, Form, LaunchShape, Layout, Reduce, Target, Unary};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;
use superopt_ir::ops::Kind;
use superopt_ir::{Arg, ConstData, Dtype, Node, Op, Program, ReduceKind, ScalarExpr, ValueId};

/// Which regions become row kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regions {
    /// Every region, elementwise chains too: an eager program launches each op.
    All,
    /// Only regions with a reduction: under `mx.compile`, which fuses elementwise chains
    /// itself, a kernel of one more compiles to no gain.
    Reductions,
}

/// Lowers every region of `p` in place; one line per kernel made.
pub fn lower(p: &mut Program, target: Target) -> Vec<String> {
    lower_until(p, target, None).unwrap_or_default()
}

/// [`lower`], given until `deadline`: `None` (and `p` as it was) where lowering outlasts it,
/// as on the tens of thousands of nodes of an unrolled recurrence.
pub fn lower_until(p: &mut Program, target: Target, deadline: Option<Instant>) -> Option<Vec<String>> {
    lower_with(p, target, deadline, None, Regions::All)
}

/// [`lower_until`], with the triangular solves `probe` identifies ([`crate::solve::lower`]).
pub fn lower_with(
    p: &mut Program,
    target: Target,
    deadline: Option<Instant>,
    probe: Option<crate::solve::lower::Probe>,
    regions: Regions,
) -> Option<Vec<String>> {
    // Quantized products and solves first: their arithmetic would otherwise become row
    // and elementwise kernels.
    let before = p.clone();
    let late = || deadline.is_some_and(|d| Instant::now() >= d);
    let mut lines = crate::quantized::lower::lower(p, target);
    if let Some(probe) = probe {
        lines.extend(crate::solve::lower::lower(p, target, probe, &late));
    }
    lines.extend(crate::scan::lower::lower(p, target, &late));
    match rows_until(p, target, deadline, regions) {
        Some(rows) => lines.extend(rows),
        None => {
            *p = before;
            return None;
        }
    }
    Some(lines)
}

/// The nodes whose values decide an `argmax`, `argsort` or `argpartition` (a router's
/// experts), those included. They stay MLX's: verification holds a candidate to `fn`'s own
/// choices, and a kernel that rounds otherwise would choose otherwise at near ties.
pub fn decision_path(p: &Program) -> BTreeSet<usize> {
    let producer: HashMap<ValueId, usize> =
        p.nodes.iter().enumerate().flat_map(|(i, n)| n.outputs.iter().map(move |o| (*o, i))).collect();
    let mut path: BTreeSet<usize> = BTreeSet::new();
    let mut todo: Vec<usize> = (0..p.nodes.len()).filter(|i| p.nodes[*i].op.is_choice()).collect();
    while let Some(i) = todo.pop() {
        if path.insert(i) {
            todo.extend(p.nodes[i].inputs.iter().filter_map(|v| producer.get(v).copied()));
        }
    }
    path
}

/// The row kernels of [`lower_until`], none on the [`decision_path`].
fn rows_until(p: &mut Program, target: Target, deadline: Option<Instant>, which: Regions) -> Option<Vec<String>> {
    let late = || deadline.is_some_and(|d| Instant::now() >= d);
    let mut kernels: Vec<Lowered> = vec![];
    let pinned = decision_path(p);
    let readers = Readers::of(p);
    for (r, (space, members)) in regions(p, &late)?.into_iter().enumerate() {
        if late() {
            return None;
        }
        if members.iter().any(|m| pinned.contains(m)) {
            continue;
        }
        let Ok((kernel, inputs, outputs)) = build(p, &readers, &space, &members, &format!("r{r}")) else { continue };
        if which == Regions::Reductions && kernel.form != Form::Rows {
            continue;
        }
        let form = if kernel.form == Form::Rows { "rows" } else { "elementwise" };
        let line = format!("kernel ({form}, {target:?}): {}", describe(p, &members)).to_lowercase();
        let call = Call { body: crate::Body::Rows(kernel), target, tuned: vec![] };
        let node = Node { op: Call::OP, args: vec![call.to_arg()], inputs, outputs };
        kernels.push(Lowered { node, members, line });
    }
    // A region that another path leaves and re-enters would make a cycle: drop such
    // kernels (their nodes stay as they were) until the program orders.
    loop {
        if kernels.is_empty() {
            return Some(vec![]);
        }
        if late() {
            return None;
        }
        match assemble(p, &kernels) {
            Ok(nodes) => {
                p.nodes = nodes;
                superopt_ir::passes::dead_code(p);
                return Some(kernels.into_iter().map(|k| k.line).collect());
            }
            Err(stuck) => {
                let stuck: BTreeSet<ValueId> = stuck.into_iter().collect();
                kernels.retain(|k| !stuck.contains(&k.node.outputs[0]));
            }
        }
    }
}

/// `p` with each kernel node in place of the last of its members (node indices), and
/// what no longer has a use removed.
pub(crate) fn replace(p: &mut Program, made: Vec<(Node, Vec<usize>)>) {
    if made.is_empty() {
        return;
    }
    let gone: BTreeSet<usize> = made.iter().flat_map(|(_, m)| m.iter().copied()).collect();
    let mut at: HashMap<usize, Vec<Node>> = HashMap::new();
    for (k, m) in made {
        at.entry(m.iter().copied().max().unwrap_or(0)).or_default().push(k);
    }
    let mut nodes = vec![];
    for (i, n) in p.nodes.iter().enumerate() {
        if !gone.contains(&i) {
            nodes.push(n.clone());
        }
        nodes.extend(at.remove(&i).unwrap_or_default());
    }
    p.nodes = nodes;
    superopt_ir::passes::dead_code(p);
}

/// A region lowered into one kernel call: the call node, the nodes it replaces, and the
/// rule line that says so.
struct Lowered {
    node: Node,
    members: Vec<usize>,
    line: String,
}

/// `p`'s nodes with each kernel in place of its members, in an order where every input is
/// made before it is used; or the first outputs of the kernels caught in a cycle.
fn assemble(p: &Program, kernels: &[Lowered]) -> Result<Vec<Node>, Vec<ValueId>> {
    let replaced: BTreeSet<usize> = kernels.iter().flat_map(|k| k.members.iter().copied()).collect();
    let mut at: HashMap<usize, Vec<&Node>> = HashMap::new();
    for k in kernels {
        at.entry(k.members.last().copied().unwrap_or(0)).or_default().push(&k.node);
    }
    let mut nodes: Vec<Node> = vec![];
    for (i, n) in p.nodes.iter().enumerate() {
        if !replaced.contains(&i) {
            nodes.push(n.clone());
        }
        nodes.extend(at.remove(&i).unwrap_or_default().into_iter().cloned());
    }
    let (ordered, rest) = topological(nodes, p);
    if rest.is_empty() {
        return Ok(ordered);
    }
    let stuck: Vec<ValueId> = rest.iter().filter(|n| n.op == Call::OP).map(|n| n.outputs[0]).collect();
    // No kernel stuck: the cycle is in the traced nodes themselves; lower nothing.
    Err(if stuck.is_empty() { kernels.iter().map(|k| k.node.outputs[0]).collect() } else { stuck })
}

fn describe(p: &Program, members: &[usize]) -> String {
    let ops: Vec<&str> = members.iter().map(|i| p.nodes[*i].op).filter(|o| *o != Op::Broadcast).map(Op::name).collect();
    let mut counts: Vec<(String, usize)> = vec![];
    for o in ops {
        match counts.iter_mut().find(|(n, _)| n == o) {
            Some((_, c)) => *c += 1,
            None => counts.push((o.to_string(), 1)),
        }
    }
    counts.iter().map(|(o, c)| if *c > 1 { format!("{o} x{c}") } else { o.clone() }).collect::<Vec<_>>().join(", ")
}

/// How a value of `shape` maps onto the space `s` (`[.., n]`).
fn layout(shape: &[i64], s: &[i64]) -> Option<Layout> {
    let n = *s.last()?;
    let numel: i64 = shape.iter().product();
    if shape == s {
        return Some(Layout::Full);
    }
    if numel == 1 {
        return Some(Layout::Scalar);
    }
    if shape.len() == s.len() && shape[..shape.len() - 1] == s[..s.len() - 1] && shape.last() == Some(&1) {
        return Some(Layout::Row);
    }
    if shape.len() <= s.len() && shape.last() == Some(&n) && numel == n {
        return Some(Layout::Col);
    }
    None
}

/// The space (full shape) a node works over, if it can be part of a region. `known`
/// gives the spaces of nodes already placed, by the values they produce.
fn space_of(p: &Program, n: &Node, known: &HashMap<ValueId, Vec<i64>>) -> Option<Vec<i64>> {
    let out = p.value(*n.outputs.first()?);
    let ins: Vec<&superopt_ir::Value> = n.inputs.iter().map(|i| p.value(*i)).collect();
    let float_out = computable(out.dtype) || out.dtype == Dtype::Bool;
    let space = match (n.op, n.op.kind()) {
        (Op::Softmax | Op::LogSumExp | Op::RMSNorm | Op::LayerNorm, _) => ins.first()?.shape.clone(),
        (Op::Reduce, _) => {
            let shape = &ins.first()?.shape;
            let axes = n.args.get(1)?.list()?;
            let last = shape.len() as i64 - 1;
            if axes.len() != 1
                || axes[0].int()?.as_const()? != last
                || !matches!(n.reduce_kind()?, ReduceKind::Sum | ReduceKind::Min | ReduceKind::Max)
            {
                return None;
            }
            shape.clone()
        }
        (Op::Broadcast, _) => out.shape.clone(),
        (_, Kind::Unary | Kind::Binary | Kind::Ternary) if float_out && n.outputs.len() == 1 => {
            // A per-row value joins the region of the reduction it came from.
            let from =
                n.inputs.iter().filter_map(|i| known.get(i)).find(|s| layout(&out.shape, s) == Some(Layout::Row));
            from.cloned().unwrap_or_else(|| out.shape.clone())
        }
        _ => return None,
    };
    if space.is_empty() || *space.last()? < 2 || !ins.iter().all(|v| layout(&v.shape, &space).is_some()) {
        return None;
    }
    let out_ok =
        n.outputs.iter().all(|o| matches!(layout(&p.value(*o).shape, &space), Some(Layout::Full | Layout::Row)));
    out_ok.then_some(space)
}

/// Groups of node indices (in program order) that one kernel can compute, with their space.
fn regions(p: &Program, late: &dyn Fn() -> bool) -> Option<Vec<(Vec<i64>, Vec<usize>)>> {
    let mut space: Vec<Option<Vec<i64>>> = vec![None; p.nodes.len()];
    let mut known: HashMap<ValueId, Vec<i64>> = HashMap::new();
    let mut producer: Vec<Option<usize>> = vec![None; p.values.len()];
    for (i, n) in p.nodes.iter().enumerate() {
        space[i] = space_of(p, n, &known);
        for o in &n.outputs {
            producer[*o] = Some(i);
            if let Some(s) = &space[i] {
                known.insert(*o, s.clone());
            }
        }
    }
    // Union producer and consumer when they share a space.
    let mut parent: Vec<usize> = (0..p.nodes.len()).collect();
    fn find(parent: &mut [usize], x: usize) -> usize {
        let mut r = x;
        while parent[r] != r {
            r = parent[r];
        }
        parent[x] = r;
        r
    }
    for (i, n) in p.nodes.iter().enumerate() {
        for v in &n.inputs {
            if let Some(j) = producer[*v] {
                if space[i].is_some() && space[i] == space[j] {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                    parent[a] = b;
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, s) in space.iter().enumerate() {
        if s.is_some() {
            let r = find(&mut parent, i);
            groups.entry(r).or_default().push(i);
        }
    }
    let mut out = vec![];
    for (_, members) in groups {
        for part in acyclic(p, members, &producer, late)? {
            let s = space[part[0]].clone().unwrap();
            if worth_it(p, &part) {
                out.push((s, part));
            }
        }
    }
    Some(out)
}

/// Splits `members` (in program order) so that no path leaves a part and comes back into
/// it through other nodes: a member's level is the most of its member inputs' levels and
/// one more than the levels a path through other nodes carries to it; each level is a
/// part. One pass over the program between the first and the last member (a path that
/// leaves and comes back lies there): an unrolled recurrence has thousands of groups.
fn acyclic(
    p: &Program,
    members: Vec<usize>,
    producer: &[Option<usize>],
    late: &dyn Fn() -> bool,
) -> Option<Vec<Vec<usize>>> {
    if late() {
        return None;
    }
    let (Some(&first), Some(&last)) = (members.first(), members.last()) else { return Some(vec![]) };
    let mut member = vec![false; last - first + 1];
    members.iter().for_each(|i| member[i - first] = true);
    // Each node's level in the window: a member's part, or (another node) the highest
    // part it reads through any path; none where it reads no member.
    let mut level: Vec<Option<usize>> = vec![None; last - first + 1];
    for i in first..=last {
        let carried = p.nodes[i].inputs.iter().filter_map(|v| producer[*v]).filter(|j| *j >= first);
        let from = |j: usize| level[j - first].map(|l| if member[j - first] || !member[i - first] { l } else { l + 1 });
        let l = carried.filter_map(from).max();
        level[i - first] = if member[i - first] { Some(l.unwrap_or(0)) } else { l };
    }
    let mut parts: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in members {
        parts.entry(level[i - first].unwrap_or(0)).or_default().push(i);
    }
    Some(parts.into_values().collect())
}

/// A single cheap elementwise op gains nothing from a kernel of its own.
fn worth_it(p: &Program, members: &[usize]) -> bool {
    let work = members.iter().filter(|i| p.nodes[**i].op != Op::Broadcast).count();
    let fused = members
        .iter()
        .any(|i| matches!(p.nodes[*i].op, Op::Reduce | Op::Softmax | Op::LogSumExp | Op::RMSNorm | Op::LayerNorm));
    work >= 2 || fused
}

type Built = (crate::Kernel, Vec<ValueId>, Vec<ValueId>);

/// Who reads each value: the nodes (by index), and whether the program returns it.
struct Readers {
    nodes: HashMap<ValueId, Vec<usize>>,
    returned: BTreeSet<ValueId>,
}

impl Readers {
    fn of(p: &Program) -> Readers {
        let mut nodes: HashMap<ValueId, Vec<usize>> = HashMap::new();
        for (i, n) in p.nodes.iter().enumerate() {
            n.inputs.iter().for_each(|v| nodes.entry(*v).or_default().push(i));
        }
        Readers { nodes, returned: p.outputs.iter().copied().collect() }
    }

    /// Whether `v` is returned or read by a node outside `members`.
    fn read_outside(&self, v: ValueId, members: &BTreeSet<usize>) -> bool {
        self.returned.contains(&v) || self.nodes.get(&v).is_some_and(|r| r.iter().any(|i| !members.contains(i)))
    }
}

/// The kernel computing `members` over `space`, its input values and output values.
fn build(p: &Program, readers: &Readers, space: &[i64], members: &[usize], name: &str) -> Result<Built, Invalid> {
    let bad = |s: String| Invalid(s);
    let inside: BTreeSet<ValueId> = members.iter().flat_map(|i| p.nodes[*i].outputs.iter().copied()).collect();
    let rows = members
        .iter()
        .any(|i| matches!(p.nodes[*i].op, Op::Reduce | Op::Softmax | Op::LogSumExp | Op::RMSNorm | Op::LayerNorm));
    let mut b = Builder::new(name, if rows { Form::Rows } else { Form::Elementwise });
    let mut val: HashMap<ValueId, usize> = HashMap::new();
    let mut inputs: Vec<ValueId> = vec![];
    for i in members {
        let n = &p.nodes[*i];
        for v in &n.inputs {
            if inside.contains(v) || val.contains_key(v) {
                continue;
            }
            val.insert(*v, operand(p, &mut b, *v, space, &mut inputs)?);
        }
        let k = node(p, &mut b, n, &val)?;
        val.insert(n.outputs[0], k);
    }
    // Results: what is read after the region, or returned.
    let members_set: BTreeSet<usize> = members.iter().copied().collect();
    let mut outputs = vec![];
    for v in inside.iter().filter(|v| readers.read_outside(**v, &members_set)) {
        let value = p.value(*v);
        let l = layout(&value.shape, space)
            .filter(|l| matches!(l, Layout::Full | Layout::Row))
            .ok_or_else(|| bad("a result of odd shape".into()))?;
        if !computable(value.dtype) {
            return Err(bad(format!("a {} result", value.dtype.name())));
        }
        b.output(&format!("out{}", outputs.len()), l, value.dtype, val[v]);
        outputs.push(*v);
    }
    let kernel = b.finish()?;
    let n = *space.last().unwrap();
    let dtypes = inputs.iter().chain(&outputs).map(|v| p.value(*v).dtype).collect();
    if !params::rows_fit(&kernel, &LaunchShape { rows: space.iter().rev().skip(1).product(), n, dtypes }) {
        return Err(bad("rows too long to keep in registers".into()));
    }
    Ok((kernel, inputs, outputs))
}

/// A value read from outside the region: an inline literal, or an operand.
fn operand(
    p: &Program,
    b: &mut Builder,
    v: ValueId,
    space: &[i64],
    inputs: &mut Vec<ValueId>,
) -> Result<usize, Invalid> {
    let value = p.value(v);
    if let Some(superopt_ir::Constant { data: ConstData::Scalar { expr: ScalarExpr::Lit { v: lit } }, .. }) =
        p.constant(v)
    {
        if value.numel() == 1 && (computable(value.dtype) || value.dtype == Dtype::Float64) {
            return Ok(b.constant(value.dtype.round(*lit)));
        }
    }
    if !computable(value.dtype) {
        return Err(Invalid(format!("a {} operand", value.dtype.name())));
    }
    let l = layout(&value.shape, space).ok_or_else(|| Invalid("an operand of odd shape".into()))?;
    inputs.push(v);
    Ok(b.input(&format!("in{}", inputs.len() - 1), l))
}

pub(crate) const UNARY: &[(Op, Unary)] = &[
    (Op::Negative, Unary::Neg),
    (Op::Exp, Unary::Exp),
    (Op::Abs, Unary::Abs),
    (Op::Square, Unary::Square),
    (Op::Sigmoid, Unary::Sigmoid),
    (Op::Tanh, Unary::Tanh),
    (Op::Erf, Unary::Erf),
    (Op::Sin, Unary::Sin),
    (Op::Cos, Unary::Cos),
];

pub(crate) const BINARY: &[(Op, Binary)] = &[
    (Op::Add, Binary::Add),
    (Op::Subtract, Binary::Sub),
    (Op::Multiply, Binary::Mul),
    (Op::Divide, Binary::Div),
    (Op::Maximum, Binary::Max),
    (Op::Minimum, Binary::Min),
    (Op::Power, Binary::Pow),
    (Op::Greater, Binary::Gt),
    (Op::GreaterEqual, Binary::Ge),
    (Op::Less, Binary::Lt),
    (Op::LessEqual, Binary::Le),
    (Op::NotEqual, Binary::Ne),
];

fn flag(n: &Node, i: usize) -> bool {
    match n.args.get(i) {
        Some(Arg::Bool(b)) => *b,
        Some(Arg::Int(d)) => d.as_const().is_some_and(|v| v != 0),
        _ => false,
    }
}

fn eps(n: &Node) -> Result<f64, Invalid> {
    match n.args.first() {
        Some(Arg::Float(f)) => Ok(*f),
        _ => Err(Invalid(format!("{} without eps", n.op))),
    }
}

/// The kernel value computing node `n`.
fn node(p: &Program, b: &mut Builder, n: &Node, val: &HashMap<ValueId, usize>) -> Result<usize, Invalid> {
    let a = |i: usize| val[&n.inputs[i]];
    // The norms get a 0-d weight or bias where Python passed None.
    let opt = |i: usize| n.inputs.get(i).filter(|v| !p.value(**v).shape.is_empty()).map(|v| val[v]);
    let op = n.op;
    if let Some((_, u)) = UNARY.iter().find(|(o, _)| *o == op) {
        return Ok(b.unary(*u, a(0)));
    }
    if let Some((_, f)) = BINARY.iter().find(|(o, _)| *o == op) {
        return Ok(b.binary(*f, a(0), a(1)));
    }
    Ok(match op {
        Op::Broadcast => a(0),
        Op::Sqrt if flag(n, 0) => b.unary(Unary::Rsqrt, a(0)),
        Op::Sqrt => b.unary(Unary::Sqrt, a(0)),
        Op::Log if matches!(n.args.first().and_then(Arg::int).and_then(|d| d.as_const()), Some(2) | None) => {
            b.unary(Unary::Log, a(0))
        }
        Op::Equal if !flag(n, 0) => b.binary(Binary::Eq, a(0), a(1)),
        Op::Select => b.select(a(0), a(1), a(2)),
        Op::AsType => match n.args.first() {
            Some(Arg::Dtype(d)) if computable(*d) => b.cast(*d, a(0)),
            _ => return Err(Invalid("a cast to a non-float dtype".into())),
        },
        Op::Reduce => {
            let r = match n.reduce_kind() {
                Some(ReduceKind::Sum) => Reduce::Sum,
                Some(ReduceKind::Min) => Reduce::Min,
                Some(ReduceKind::Max) => Reduce::Max,
                _ => return Err(Invalid("a reduction other than sum, min or max".into())),
            };
            b.reduce(r, a(0))
        }
        Op::Softmax => library::softmax(b, a(0)),
        Op::LogSumExp => library::logsumexp(b, a(0)),
        Op::RMSNorm => library::rms_norm(b, a(0), opt(1), eps(n)?),
        Op::LayerNorm => library::layer_norm(b, a(0), opt(1), opt(2), eps(n)?),
        other => return Err(Invalid(format!("no kernel form for {other}"))),
    })
}

/// `nodes` in an order where every value is made before it is read (each time the
/// earliest node that can go next), and those that never become ready (a cycle), in their
/// order.
pub(crate) fn topological(nodes: Vec<Node>, p: &Program) -> (Vec<Node>, Vec<Node>) {
    let given: BTreeSet<ValueId> = p.inputs.iter().copied().chain(p.constants.iter().map(|c| c.value)).collect();
    let producer: HashMap<ValueId, usize> =
        nodes.iter().enumerate().flat_map(|(i, n)| n.outputs.iter().map(move |o| (*o, i))).collect();
    // Per node, how many of its inputs other nodes make and have not yet made; per node, its readers.
    let mut waiting = vec![0usize; nodes.len()];
    let mut readers: Vec<Vec<usize>> = vec![vec![]; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for v in n.inputs.iter().filter(|v| !given.contains(v)) {
            waiting[i] += 1;
            if let Some(&j) = producer.get(v) {
                readers[j].push(i);
            }
        }
    }
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> =
        (0..nodes.len()).filter(|i| waiting[*i] == 0).map(std::cmp::Reverse).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(std::cmp::Reverse(i)) = ready.pop() {
        order.push(i);
        for &r in &readers[i] {
            waiting[r] -= 1;
            if waiting[r] == 0 {
                ready.push(std::cmp::Reverse(r));
            }
        }
    }
    let mut slots: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    let out = order.iter().filter_map(|i| slots[*i].take()).collect();
    (out, slots.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use superopt_ir::{OutputKind, Signature, Value};

    /// A float32 program over `[4, 8]` values: inputs x and w (`[8, 8]`), then `nodes` as
    /// (op, inputs), each making the next value.
    fn program(nodes: &[(&str, Vec<ValueId>)], reduce_axis: Option<i64>) -> Program {
        let f32 = |shape: &[i64]| Value { shape: shape.to_vec(), dtype: Dtype::Float32 };
        let mut values = vec![f32(&[4, 8]), f32(&[8, 8])];
        let mut ns = vec![];
        for (op, ins) in nodes {
            let (args, shape) = match (*op, reduce_axis) {
                ("Reduce", Some(a)) => {
                    let mut s = vec![4, 8];
                    s[a as usize] = 1;
                    (
                        vec![
                            Arg::Int(superopt_ir::Dim::constant(2)),
                            Arg::List(vec![Arg::Int(superopt_ir::Dim::constant(a))]),
                        ],
                        s,
                    )
                }
                _ => (vec![], vec![4, 8]),
            };
            values.push(f32(&shape));
            ns.push(Node {
                op: Op::parse(op).expect("a known primitive"),
                args,
                inputs: ins.clone(),
                outputs: vec![values.len() - 1],
            });
        }
        let last = values.len() - 1;
        Program {
            values,
            inputs: vec![0, 1],
            constants: vec![],
            nodes: ns,
            outputs: vec![last],
            signature: Signature::returning(OutputKind::Array),
        }
    }

    fn in_order(p: &Program) -> bool {
        let mut ready: BTreeSet<ValueId> = p.inputs.iter().copied().collect();
        p.nodes.iter().all(|n| {
            let ok = n.inputs.iter().all(|v| ready.contains(v));
            ready.extend(n.outputs.iter().copied());
            ok
        })
    }

    #[test]
    fn a_path_out_of_a_region_and_back_splits_it_in_two() {
        // exp, square -> matmul -> add (reads the square and the matmul), tanh.
        let mut p = program(
            &[("Exp", vec![0]), ("Square", vec![2]), ("Matmul", vec![3, 1]), ("Add", vec![3, 4]), ("Tanh", vec![5])],
            None,
        );
        let made = lower(&mut p, Target::Cuda);
        assert_eq!(made.len(), 2, "{made:?}");
        assert!(in_order(&p));
        assert_eq!(p.nodes.iter().map(|n| n.op.name()).collect::<Vec<_>>(), ["Kernel", "Matmul", "Kernel"]);
    }

    #[test]
    fn a_member_reading_a_later_parts_way_out_goes_after_it() {
        // exp (A) -> matmul -> add (C, with A) -> matmul -> add (E, with A): E reads what
        // left C, which left A; one region splits into A, C, E in that order.
        let ops = [
            ("Exp", vec![0]),
            ("Matmul", vec![2, 1]),
            ("Add", vec![3, 2]),
            ("Matmul", vec![4, 1]),
            ("Add", vec![2, 5]),
        ];
        let p = program(&ops, None);
        let producer: Vec<Option<usize>> = [None, None].into_iter().chain((0..ops.len()).map(Some)).collect();
        assert_eq!(acyclic(&p, vec![0, 2, 4], &producer, &|| false), Some(vec![vec![0], vec![2], vec![4]]));
        // Near miss: E reads A and C only (no way out and back): it joins C's part.
        let direct =
            program(&[ops[0].clone(), ops[1].clone(), ops[2].clone(), ops[3].clone(), ("Add", vec![2, 4])], None);
        assert_eq!(acyclic(&direct, vec![0, 2, 4], &producer, &|| false), Some(vec![vec![0], vec![2, 4]]));
    }

    #[test]
    fn lowering_past_its_deadline_leaves_the_program_as_it_was() {
        let ops =
            [("Exp", vec![0]), ("Square", vec![2]), ("Matmul", vec![3, 1]), ("Add", vec![3, 4]), ("Tanh", vec![5])];
        let mut p = program(&ops, None);
        let before = p.nodes.len();
        assert_eq!(lower_until(&mut p, Target::Cuda, Some(Instant::now())), None);
        assert_eq!(p.nodes.len(), before);
        let far = Instant::now() + std::time::Duration::from_secs(60);
        assert_eq!(lower_until(&mut p, Target::Cuda, Some(far)).map(|m| m.len()), Some(2), "in time, it lowers");
    }

    #[test]
    fn a_reduction_over_the_last_axis_makes_a_rows_kernel() {
        let mut p = program(&[("Exp", vec![0]), ("Reduce", vec![2]), ("Divide", vec![2, 3])], Some(1));
        let made = lower(&mut p, Target::Cuda);
        assert_eq!(made, ["kernel (rows, cuda): exp, reduce, divide"]);
        let call = Call::of_node(&p.nodes[0]).unwrap();
        assert_eq!(call.rows().unwrap().reductions(), 1);
        assert_eq!(call.rows().unwrap().outputs.len(), 1);
    }

    #[test]
    fn lowered_programs_always_order() {
        // Random programs of elementwise ops, row sums and matmuls: whatever regions form
        // (and however they interleave), every input is made before it is used.
        let mut seed: u64 = 7;
        let mut next = |n: usize| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        for _ in 0..400 {
            let mut nodes: Vec<(&str, Vec<ValueId>)> = vec![];
            let mut full: Vec<ValueId> = vec![0]; // [4, 8] values
            let mut rows: Vec<ValueId> = vec![]; // [4, 1] values
            for k in 0..12 {
                let v = k + 2;
                let a = full[next(full.len())];
                let (op, ins) = match next(6) {
                    0 => ("Exp", vec![a]),
                    1 => ("Tanh", vec![a]),
                    2 if !rows.is_empty() => ("Multiply", vec![a, rows[next(rows.len())]]),
                    2 | 3 => ("Add", vec![a, full[next(full.len())]]),
                    4 => ("Matmul", vec![a, 1]),
                    _ => ("Reduce", vec![a]),
                };
                if op == "Reduce" {
                    rows.push(v)
                } else {
                    full.push(v)
                }
                nodes.push((op, ins));
            }
            let mut p = program(&nodes, Some(1));
            lower(&mut p, Target::Cuda);
            assert!(in_order(&p), "{nodes:?}");
        }
    }

    #[test]
    fn what_decides_an_argpartition_is_its_decision_path() {
        // x @ w -> exp (the scores) -> argpartition; exp(x) and its product with the scores do not decide.
        let steps = [
            ("Matmul", vec![0, 1]),
            ("Exp", vec![2]),
            ("ArgPartition", vec![3]),
            ("Exp", vec![0]),
            ("Multiply", vec![3, 5]),
        ];
        assert_eq!(decision_path(&program(&steps, None)), BTreeSet::from([0, 1, 2]));
        let near_miss = [("Matmul", vec![0, 1]), ("Exp", vec![2]), ("Sort", vec![3])];
        assert!(decision_path(&program(&near_miss, None)).is_empty(), "a sort's values decide nothing");
    }

    #[test]
    fn a_reduction_over_another_axis_is_left_alone() {
        let mut p = program(&[("Exp", vec![0]), ("Reduce", vec![2]), ("Divide", vec![2, 3])], Some(0));
        let before = p.clone();
        assert!(lower(&mut p, Target::Cuda).is_empty());
        assert_eq!(p, before);
    }

    #[test]
    fn under_compile_only_the_regions_with_a_reduction_become_kernels() {
        // exp, square (elementwise) -> matmul -> exp, row sum, divide (a reduction).
        let ops = [
            ("Exp", vec![0]),
            ("Square", vec![2]),
            ("Matmul", vec![3, 1]),
            ("Exp", vec![4]),
            ("Reduce", vec![5]),
            ("Divide", vec![5, 6]),
        ];
        let mut p = program(&ops, Some(1));
        let made = lower_with(&mut p, Target::Cuda, None, None, Regions::Reductions).unwrap();
        assert_eq!(made, ["kernel (rows, cuda): exp, reduce, divide"]);
        let mut all = program(&ops, Some(1));
        let made = lower_with(&mut all, Target::Cuda, None, None, Regions::All).unwrap();
        assert_eq!(made.len(), 2, "eager: the elementwise chain too: {made:?}");
        let mut elementwise = program(&[("Exp", vec![0]), ("Square", vec![2])], None);
        assert_eq!(lower_with(&mut elementwise, Target::Cuda, None, None, Regions::Reductions), Some(vec![]));
    }

    #[test]
    fn a_lone_elementwise_op_is_not_worth_a_kernel() {
        let mut p = program(&[("Exp", vec![0])], None);
        assert!(lower(&mut p, Target::Cuda).is_empty());
    }

    #[test]
    fn values_read_after_the_region_become_kernel_outputs() {
        // exp is read by the matmul after the region, and square is returned.
        let mut p = program(&[("Exp", vec![0]), ("Square", vec![2]), ("Matmul", vec![2, 1])], None);
        p.outputs = vec![3, 4];
        let made = lower(&mut p, Target::Cuda);
        assert_eq!(made.len(), 1);
        let call = Call::of_node(&p.nodes[0]).unwrap();
        assert_eq!(call.rows().unwrap().outputs.len(), 2);
        assert!(in_order(&p));
    }
}
