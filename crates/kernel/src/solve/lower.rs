//! Finding solves by what they compute, however they are written. A region between a
//! square matrix value `X` (`[..B, N, N]`) and a later value `Y` of its shape, made from
//! `X` and input-independent values alone, whose other values nothing else uses, is a
//! solve where it computes one. The probe (the field check's `solve_form`) runs the region
//! on one matrix (the batch axes `B` cut to 1: `rebatched`) with random exact values
//! and says which [`Sign`] and [`Rest`] it computes, if any.
//!
//! It may touch: the region's nodes (replaced by one kernel node on `X`). Regions shorter
//! than `N - 1` nodes (no substitution) and matrices outside `4..=MAX_N` are left alone.

use super::{Rest, Sign, Solve, MAX_N};
use crate::{Body, Call, Target};
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use superopt_ir::{Arg, ConstData, Dim, Node, Op, Program, ScalarExpr, ValueId};

/// Says which solve a one-matrix program (input `X`, output `Y`) computes, if any.
pub type Probe<'a> = &'a dyn Fn(&Program) -> Option<(Sign, Rest)>;

/// The latest values of `X`'s shape a region may end at that the probe tries, per `X`.
const TRIES: usize = 3;

/// The most nodes a region may hold, per column of its matrices (a written substitution
/// takes about ten per row).
const NODES_PER_COLUMN: usize = 64;

/// Replaces the solve regions of `p` by kernel nodes; one line per kernel. Where `late`
/// says time is up it stops looking and keeps what it found.
pub fn lower(p: &mut Program, target: Target, probe: Probe, late: &dyn Fn() -> bool) -> Vec<String> {
    let graph = Graph::of(p);
    let mut taken: BTreeSet<usize> = BTreeSet::new();
    let mut made: Vec<(Node, Vec<usize>)> = vec![];
    for x in candidates(p, &graph) {
        if late() {
            break;
        }
        if graph.producer.get(&x).is_some_and(|i| taken.contains(i)) {
            continue;
        }
        if let Some((node, members)) = solve_from(p, &graph, x, target, probe, made.len()) {
            if members.iter().all(|m| !taken.contains(m)) {
                taken.extend(members.iter().copied());
                made.push((node, members));
            }
        }
    }
    let lines = made.iter().map(|(n, _)| format!("kernel (solve, {target:?}): {}", what(n)).to_lowercase()).collect();
    crate::lower::replace(p, made);
    lines
}

fn what(n: &Node) -> String {
    match Call::of_node(n).map(|c| c.body) {
        Some(Body::Solve(s)) => super::describe(&s),
        _ => String::new(),
    }
}

/// Who makes and who uses each value, and which values no input reaches.
struct Graph {
    producer: HashMap<ValueId, usize>,
    users: HashMap<ValueId, Vec<usize>>,
    independent: Vec<bool>,
}

impl Graph {
    fn of(p: &Program) -> Graph {
        let mut producer = HashMap::new();
        let mut users: HashMap<ValueId, Vec<usize>> = HashMap::new();
        // Weights (tensor constants) count as inputs: no solve reads them, and the probe
        // would draw each at full size.
        let mut independent = vec![false; p.values.len()];
        for c in p.constants.iter().filter(|c| matches!(c.data, ConstData::Scalar { .. })) {
            independent[c.value] = true;
        }
        for (i, n) in p.nodes.iter().enumerate() {
            for v in &n.inputs {
                users.entry(*v).or_default().push(i);
            }
            let free = n.inputs.iter().all(|v| independent[*v]);
            for o in &n.outputs {
                producer.insert(*o, i);
                independent[*o] = free;
            }
        }
        Graph { producer, users, independent }
    }
}

/// The square float matrices a solve may start from, in program order.
fn candidates(p: &Program, g: &Graph) -> Vec<ValueId> {
    let made = p.nodes.iter().flat_map(|n| n.outputs.iter().copied());
    let square = |v: &ValueId| {
        let val = p.value(*v);
        let r = val.shape.len();
        r >= 2 && val.shape[r - 1] == val.shape[r - 2] && (4..=MAX_N).contains(&val.shape[r - 1])
    };
    p.inputs
        .iter()
        .copied()
        .chain(made)
        .filter(|v| square(v) && !g.independent[*v] && p.value(*v).dtype.is_float())
        .collect()
}

/// The solve that starts at `x`, if one does: its kernel node and the nodes it replaces.
fn solve_from(
    p: &Program,
    g: &Graph,
    x: ValueId,
    target: Target,
    probe: Probe,
    k: usize,
) -> Option<(Node, Vec<usize>)> {
    let n = *p.value(x).shape.last()?;
    let closed = closure(p, g, x, NODES_PER_COLUMN * n as usize);
    if closed.len() < n as usize - 1 {
        return None;
    }
    let ends = closed.iter().rev().filter(|i| {
        let node = &p.nodes[**i];
        // The kernel writes X's dtype.
        node.outputs.len() == 1 && *p.value(node.outputs[0]) == *p.value(x)
    });
    for end in ends.take(TRIES) {
        let y = p.nodes[*end].outputs[0];
        let members = region(p, &closed, *end);
        if members.len() < n as usize - 1 || !used_only_inside(p, g, &members, y) {
            continue;
        }
        let Some(one) = rebatched(p, g, x, &members) else { continue };
        let Some(form) = probe(&one) else { continue };
        let solve = Solve::new(&format!("s{k}"), n, p.value(y).dtype, form)?;
        let call = Call { body: Body::Solve(solve), target, tuned: vec![] };
        return Some((Node { op: Call::OP, args: vec![call.to_arg()], inputs: vec![x], outputs: vec![y] }, members));
    }
    None
}

/// The nodes made from `x` and input-independent values alone, the first `most` of them.
fn closure(p: &Program, g: &Graph, x: ValueId, most: usize) -> BTreeSet<usize> {
    let mut inside: BTreeSet<ValueId> = BTreeSet::from([x]);
    let mut closed = BTreeSet::new();
    let mut next: BinaryHeap<std::cmp::Reverse<usize>> = BinaryHeap::new();
    let push_users = |v: ValueId, next: &mut BinaryHeap<std::cmp::Reverse<usize>>| {
        for u in g.users.get(&v).into_iter().flatten() {
            next.push(std::cmp::Reverse(*u));
        }
    };
    push_users(x, &mut next);
    while let Some(std::cmp::Reverse(i)) = next.pop() {
        if closed.contains(&i) || closed.len() >= most {
            continue;
        }
        let node = &p.nodes[i];
        if node.op == Call::OP || !node.inputs.iter().all(|v| inside.contains(v) || g.independent[*v]) {
            continue;
        }
        closed.insert(i);
        for o in &node.outputs {
            inside.insert(*o);
            push_users(*o, &mut next);
        }
    }
    closed
}

/// The nodes of `closed` that `end` is made from (with `end`), in program order.
fn region(p: &Program, closed: &BTreeSet<usize>, end: usize) -> Vec<usize> {
    let producer: HashMap<ValueId, usize> =
        closed.iter().flat_map(|i| p.nodes[*i].outputs.iter().map(move |o| (*o, *i))).collect();
    let mut seen = BTreeSet::from([end]);
    let mut stack = vec![end];
    while let Some(i) = stack.pop() {
        for v in &p.nodes[i].inputs {
            if let Some(j) = producer.get(v) {
                if seen.insert(*j) {
                    stack.push(*j);
                }
            }
        }
    }
    seen.into_iter().collect()
}

/// Whether every value the `members` make, but `out`, is used by members alone and is no
/// program output.
fn used_only_inside(p: &Program, g: &Graph, members: &[usize], out: ValueId) -> bool {
    let inner = members.iter().flat_map(|m| p.nodes[*m].outputs.iter()).filter(|v| **v != out);
    let mut values = inner;
    values.all(|v| {
        !p.outputs.contains(v) && g.users.get(v).into_iter().flatten().all(|u| members.binary_search(u).is_ok())
    })
}

/// The region from `x` (the program's one input) to the last member's output, with `x`'s
/// batch axes (all but the last two) cut to 1 in every value that has them in front, and
/// the input-independent values it reads; `None` where an operation reduces, moves or
/// makes the batch axes, or reads an operand that varies along them without having them.
fn rebatched(p: &Program, g: &Graph, x: ValueId, members: &[usize]) -> Option<Program> {
    let shape = &p.value(x).shape;
    let batch = &shape[..shape.len() - 2];
    let mut nodes: BTreeSet<usize> = members.iter().copied().collect();
    let mut stack: Vec<ValueId> = members.iter().flat_map(|m| p.nodes[*m].inputs.iter().copied()).collect();
    while let Some(v) = stack.pop() {
        if v == x || !g.independent[v] {
            continue;
        }
        if let Some(i) = g.producer.get(&v) {
            if nodes.insert(*i) {
                stack.extend(p.nodes[*i].inputs.iter().copied());
            }
        }
    }
    let mut one = Program {
        values: p.values.clone(),
        inputs: vec![x],
        constants: vec![],
        nodes: vec![],
        outputs: vec![p.nodes[*members.last()?].outputs[0]],
        signature: p.signature.clone(),
    };
    let used: BTreeSet<ValueId> = nodes.iter().flat_map(|i| p.nodes[*i].inputs.iter().copied()).collect();
    one.constants = p.constants.iter().filter(|c| used.contains(&c.value)).cloned().collect();
    let k = batch.len();
    let prefixed = |v: &[i64]| v.len() >= k && v[..k] == *batch;
    let cut = |v: &mut Vec<i64>| v[..k].iter_mut().for_each(|d| *d = 1);
    cut(&mut one.values[x].shape);
    let shapes: Vec<Vec<i64>> = p.inputs.iter().map(|v| p.value(*v).shape.clone()).collect();
    for c in &mut one.constants {
        if k > 0 && prefixed(&p.value(c.value).shape) {
            return None; // a batched constant array: its entries cannot be cut
        }
        if let ConstData::Scalar { expr } = &mut c.data {
            match expr {
                ScalarExpr::Recip { dim } | ScalarExpr::Rsqrt { dim } | ScalarExpr::Of { dim } => {
                    *dim = Dim::constant(dim.as_const()?) // a size would not be the same at every size
                }
                ScalarExpr::Lit { .. } => {}
            }
        }
    }
    for i in nodes {
        let node = &p.nodes[i];
        let outs: Vec<bool> = node.outputs.iter().map(|o| prefixed(&p.value(*o).shape)).collect();
        let ins: Vec<&[i64]> = node.inputs.iter().map(|v| p.value(*v).shape.as_slice()).collect();
        let args = if k == 0 {
            fixed(&node.args)?
        } else if outs.iter().all(|o| *o) {
            // Every input has the batch axes (cut alike) or is the same along them.
            let rank = p.value(node.outputs[0]).shape.len();
            let along = |s: &[i64]| (0..k).all(|d| (d + s.len()).checked_sub(rank).is_none_or(|j| s[j] == 1));
            if !ins.iter().all(|s| prefixed(s) || along(s)) {
                return None;
            }
            node.outputs.iter().for_each(|o| cut(&mut one.values[*o].shape));
            cut_args(node, batch, &shapes, (ins.first().map_or(0, |s| s.len()), rank))?
        } else if outs.iter().any(|o| *o) || ins.iter().any(|s| prefixed(s)) {
            return None; // the batch axes reduced, moved or made
        } else {
            fixed(&node.args)?
        };
        one.nodes.push(Node { args, ..node.clone() });
    }
    Some(one)
}

/// `args` where every integer is a constant (the region works alike at every size).
fn fixed(args: &[Arg]) -> Option<Vec<Arg>> {
    fn constant(a: &Arg) -> bool {
        match a {
            Arg::Int(d) => d.as_const().is_some(),
            Arg::List(items) => items.iter().all(constant),
            _ => true,
        }
    }
    args.iter().all(constant).then(|| args.to_vec())
}

/// `n`'s arguments for its values with the batch axes `batch` cut to 1; `None` where they
/// touch those axes otherwise than in full. The batch axes' extents may follow the inputs'
/// (`shapes`, as traced); every other integer must be a constant. `ranks`: of its first
/// input and of its output.
fn cut_args(n: &Node, batch: &[i64], shapes: &[Vec<i64>], (rank_in, rank_out): (usize, usize)) -> Option<Vec<Arg>> {
    let k = batch.len();
    let ints = |a: &Arg| -> Option<Vec<i64>> {
        let items = a.list()?.iter().map(|d| d.int());
        items.enumerate().map(|(i, d)| if i < k { d?.eval(shapes) } else { d?.as_const() }).collect()
    };
    let constants = |a: &Arg| -> Option<Vec<i64>> { a.list()?.iter().map(|d| d.int()?.as_const()).collect() };
    let int = |a: Option<&Arg>| -> Option<Vec<i64>> { Some(vec![a?.int()?.as_const()?]) };
    let list = |v: Vec<i64>| Arg::List(v.into_iter().map(|d| Arg::Int(Dim::constant(d))).collect());
    // Every axis (negative ones counted from the end of `rank`) past the batch axes.
    let beyond = |axes: Option<Vec<i64>>, rank: usize| {
        axes.is_some_and(|a| a.iter().all(|a| (if *a < 0 { a + rank as i64 } else { *a }) >= k as i64))
    };
    let mut args = n.args.clone();
    let shape_at = |args: &mut Vec<Arg>, i: usize| -> Option<()> {
        let mut s = ints(args.get(i)?)?;
        if s.len() < k || s[..k] != *batch {
            return None;
        }
        s[..k].iter_mut().for_each(|d| *d = 1);
        args[i] = list(s);
        Some(())
    };
    let slice_at = |args: &mut Vec<Arg>, i: usize| -> Option<()> {
        let (start, mut end, strides) = (ints(args.get(i)?)?, ints(args.get(i + 1)?)?, ints(args.get(i + 2)?)?);
        let whole =
            (0..k).all(|d| start.get(d) == Some(&0) && end.get(d) == Some(&batch[d]) && strides.get(d) == Some(&1));
        if !whole {
            return None;
        }
        end[..k].iter_mut().for_each(|d| *d = 1);
        (args[i], args[i + 1], args[i + 2]) = (list(start), list(end), list(strides));
        Some(())
    };
    use superopt_ir::ops::Kind;
    match n.op {
        Op::Broadcast | Op::Reshape => shape_at(&mut args, 0)?,
        Op::Slice | Op::SliceUpdate => slice_at(&mut args, n.op.bounds_at()?)?,
        Op::ExpandDims if beyond(args.first().and_then(constants), rank_out) => return fixed(&args),
        Op::Squeeze if beyond(args.first().and_then(constants), rank_in) => return fixed(&args),
        Op::Reduce if beyond(args.get(1).and_then(constants), rank_in) => return fixed(&args),
        Op::Split | Op::Scan if beyond(int(args.get(1)), rank_in) => return fixed(&args),
        Op::Concatenate if beyond(int(args.first()), rank_in) => return fixed(&args),
        Op::Softmax if rank_in > k => return fixed(&args), // over the last axis
        Op::Transpose if constants(args.first()?)?.iter().take(k).enumerate().all(|(d, a)| *a == d as i64) => {
            return fixed(&args)
        }
        Op::Matmul | Op::Full | Op::Copy | Op::AsType => return fixed(&args),
        op if matches!(op.kind(), Kind::Unary | Kind::Binary | Kind::Ternary) => return fixed(&args),
        _ => return None,
    }
    Some(args)
}
