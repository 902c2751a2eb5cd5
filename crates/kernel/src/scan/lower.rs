//! Finding recurrences in a program: a chain of same-shaped float values each made from
//! the one before by the same primitives (the state), steps whose every node repeats the
//! first step's with the state and per-step operands in its place, operands that are
//! strided views of one array per step (`q[:, :, t]`) or the same array every step.
//!
//! It may touch: the nodes of the steps, which become one `Kernel` node ([`super::Scan`]);
//! the values the rest of the program reads from a step become slices of its outputs, and
//! concatenations of such slices become transposes (`flatten_concatenates`,
//! `lanes_in_place`, which apply to the whole program). Nothing else. A step may hold
//! elementwise arithmetic, sum/max/min reductions over one axis of the state (the line),
//! products along the line or of extent 1, float casts, and shape changes that only add,
//! drop, move or broadcast axes.

use super::{row_major, Access, Scan, StepOut, MAX_LINE};
use crate::ir::{computable, Binary, Inst, Op as K, Reduce, Unary};
use crate::lower::{BINARY, UNARY};
use crate::{Body, Call, Target};
use std::collections::{BTreeSet, HashMap};
use superopt_ir::ops::Kind;
use superopt_ir::{Arg, Dtype, Node, Op, Program, ReduceKind, Value, ValueId};

/// Fewer steps are not worth a kernel.
pub const MIN_STEPS: usize = 8;
/// The longest step (in state values along the chain) looked for.
const MAX_PERIOD: usize = 32;

/// Lowers every recurrence of `p` in place; one line per kernel made.
pub fn lower(p: &mut Program, target: Target, late: &dyn Fn() -> bool) -> Vec<String> {
    let mut lines = vec![];
    let mut tried: BTreeSet<ValueId> = BTreeSet::new();
    for _ in 0..8 {
        if late() {
            break;
        }
        let chain = spine(p, &tried);
        if chain.is_empty() {
            break;
        }
        match found(p, &chain, &format!("scan{}", lines.len())).and_then(|f| apply(p, f, target)) {
            Some(line) => lines.push(line),
            // Not a recurrence a kernel runs: nor is any chain ending on it.
            None => tried.extend(chain),
        }
    }
    lines
}

/// The longest chain of same-shaped float values (float32, or a narrower float the state is
/// rounded to each step) each an elementwise result of the one
/// before (ending elsewhere than at `tried`), from its start.
fn spine(p: &Program, tried: &BTreeSet<ValueId>) -> Vec<ValueId> {
    let mut best: HashMap<ValueId, (usize, ValueId)> = HashMap::new();
    for n in &p.nodes {
        let elementwise = matches!(n.op.kind(), Kind::Unary | Kind::Binary | Kind::Ternary);
        let [out] = n.outputs[..] else { continue };
        let v = p.value(out);
        if !elementwise || !computable(v.dtype) || v.shape.is_empty() {
            continue;
        }
        let before = n.inputs.iter().filter(|i| p.value(**i) == v).map(|i| (best.get(i).map_or(0, |b| b.0), *i)).max();
        if let Some((len, from)) = before {
            best.insert(out, (len + 1, from));
        }
    }
    let Some((&end, _)) = best.iter().filter(|(v, _)| !tried.contains(v)).max_by_key(|(v, b)| (b.0, **v)) else {
        return vec![];
    };
    let mut chain = vec![end];
    while let Some((_, from)) = best.get(chain.last().unwrap()) {
        chain.push(*from);
    }
    chain.reverse();
    chain
}

/// A recurrence found: its states and steps, and the kernel that computes them.
struct Found {
    scan: Scan,
    states: Vec<ValueId>,
    /// Node positions, step by step.
    steps: Vec<Vec<usize>>,
    /// The kernel's inputs: the initial state's array, then each operand's.
    inputs: Vec<ValueId>,
    /// Per step output of the kernel: the value it is at each step.
    outputs: Vec<Vec<ValueId>>,
    /// Whether the rest of the program reads the final state.
    final_read: bool,
    /// The inputs read as float32 that are boolean (a per-step mask): cast before the kernel.
    masks: Vec<usize>,
}

/// The recurrence along `chain`, if the steps repeat and a kernel can run them.
fn found(p: &Program, chain: &[ValueId], name: &str) -> Option<Found> {
    let producer = producers(p);
    let sig = |v: &ValueId| {
        let n = &p.nodes[producer[v]];
        (n.op, format!("{:?}", n.args), n.inputs.len())
    };
    let sigs: Vec<_> = chain[1..].iter().map(sig).collect();
    let (first, period, n) = period(&sigs)?;
    let mut states: Vec<ValueId> = (0..=n).map(|i| chain[first + i * period]).collect();
    // Trim steps that do not repeat the first (a last partial step, a first special one).
    for _ in 0..4 {
        if states.len() <= MIN_STEPS {
            return None;
        }
        let (steps, differs) = stepped(p, &producer, &states)?;
        match differs {
            None => {
                let (states, steps) = extended(p, &producer, states, steps);
                return build(p, &producer, states, steps, name);
            }
            Some(1) => {
                states.remove(0);
            }
            Some(j) => states.truncate(j + 1),
        }
    }
    None
}

/// The steps of `states` (their nodes by position), and the first that does not repeat
/// the first step, if one.
fn stepped(
    p: &Program,
    producer: &HashMap<ValueId, usize>,
    states: &[ValueId],
) -> Option<(Vec<Vec<usize>>, Option<usize>)> {
    let mut steps = assign(p, producer, states)?;
    prune_last(p, &mut steps, states);
    absorb(p, producer, &mut steps, states);
    let differs = (1..steps.len()).find(|j| same(p, producer, &steps, states, *j).is_none());
    Some((steps, differs))
}

/// `states` with the state before the first where the step before repeats the first too
/// (the chain may enter the first step by another of its values).
fn extended(
    p: &Program,
    producer: &HashMap<ValueId, usize>,
    states: Vec<ValueId>,
    steps: Vec<Vec<usize>>,
) -> (Vec<ValueId>, Vec<Vec<usize>>) {
    let Some(before) = earlier(p, producer, (producer[&states[1]], producer.get(&states[0]).copied()), &states[0])
    else {
        return (states, steps);
    };
    let mut longer = vec![before];
    longer.extend(&states);
    match stepped(p, producer, &longer) {
        Some((more, None)) => (longer, more),
        _ => (states, steps),
    }
}

/// Walking back from the node that makes the first step's next state and, in lockstep,
/// the one that makes its state: the value in the place of the state, if one.
fn earlier(
    p: &Program,
    producer: &HashMap<ValueId, usize>,
    (a, b): (usize, Option<usize>),
    state: &ValueId,
) -> Option<ValueId> {
    earlier_within(p, producer, (a, b), state, 32)
}

/// [`earlier`], at most `depth` nodes back.
fn earlier_within(
    p: &Program,
    producer: &HashMap<ValueId, usize>,
    (a, b): (usize, Option<usize>),
    state: &ValueId,
    depth: usize,
) -> Option<ValueId> {
    let b = b?;
    if depth == 0 {
        return None;
    }
    let (x, y) = (&p.nodes[a], &p.nodes[b]);
    if x.op != y.op || x.args != y.args || x.inputs.len() != y.inputs.len() || a <= b {
        return None;
    }
    let mut found = None;
    for (u, w) in x.inputs.iter().zip(&y.inputs) {
        let here = if u == state {
            Some(*w)
        } else if producer.get(u).is_some_and(|i| *i > b) && u != w {
            earlier_within(p, producer, (producer[u], producer.get(w).copied()), state, depth - 1)
        } else {
            None
        };
        if let Some(v) = here {
            if found.is_some_and(|f| f != v) {
                return None;
            }
            found = Some(v);
        }
    }
    found
}

fn producers(p: &Program) -> HashMap<ValueId, usize> {
    p.nodes.iter().enumerate().flat_map(|(i, n)| n.outputs.iter().map(move |o| (*o, i))).collect()
}

/// Where the chain's primitives repeat with the shortest period: the first repeating
/// position, the period and how many whole periods follow.
fn period<T: PartialEq>(sigs: &[T]) -> Option<(usize, usize, usize)> {
    for period in 1..=MAX_PERIOD.min(sigs.len() / 2) {
        let mut best = (0, 0);
        let mut start = 0;
        for j in 0..=sigs.len() - period {
            if j == sigs.len() - period || sigs[j] != sigs[j + period] {
                if j - start > best.1 - best.0 {
                    best = (start, j);
                }
                start = j + 1;
            }
        }
        let steps = (best.1 - best.0 + period) / period;
        if steps >= MIN_STEPS {
            return Some((best.0, period, steps));
        }
    }
    None
}

/// What a value is to the recurrence.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    /// Made before the first state, or independently of it.
    Outside,
    State(usize),
    Step(usize),
    /// Read from the steps but not part of one (a stack of their outputs).
    After,
}

/// Each step's nodes (positions, in order); `None` where a step reads another step's
/// values other than its state, or a node outside the steps feeds a later state.
fn assign(p: &Program, producer: &HashMap<ValueId, usize>, states: &[ValueId]) -> Option<Vec<Vec<usize>>> {
    let n = states.len() - 1;
    let state_of: HashMap<ValueId, usize> = states.iter().enumerate().map(|(i, v)| (*v, i)).collect();
    let feeds = feeds_a_state(p, &state_of);
    let mut class: Vec<Class> = vec![Class::Outside; p.values.len()];
    for (v, i) in &state_of {
        class[*v] = Class::State(*i);
    }
    let mut steps: Vec<Vec<usize>> = vec![vec![]; n];
    let first = producer.get(&states[0]).map_or(0, |i| i + 1);
    for (pos, node) in p.nodes.iter().enumerate().skip(first) {
        let ins: Vec<Class> = node.inputs.iter().map(|v| class[*v]).collect();
        if ins.iter().all(|c| *c == Class::Outside) {
            continue;
        }
        let c = if feeds[pos] { spine_step(&ins, n)? } else { side_step(&ins, n) };
        if let Class::Step(j) = c {
            steps[j].push(pos);
        }
        for o in &node.outputs {
            if !state_of.contains_key(o) {
                class[*o] = c;
            }
        }
    }
    Some(steps)
}

/// The last step without what follows the loop: nodes reading only the final state (and
/// values from before the loop) beyond those the first step has in their place.
fn prune_last(p: &Program, steps: &mut [Vec<usize>], states: &[ValueId]) {
    let n = steps.len();
    if n < 2 || steps[n - 1].len() <= steps[0].len() {
        return;
    }
    let made: BTreeSet<ValueId> = steps.iter().flatten().flat_map(|i| p.nodes[*i].outputs.iter().copied()).collect();
    let late = |j: usize| {
        let mut own: BTreeSet<ValueId> = BTreeSet::from([states[j + 1]]);
        let mut nodes = vec![];
        for pos in &steps[j] {
            let node = &p.nodes[*pos];
            let before = |v: &ValueId| !made.contains(v) && !states.contains(v);
            if node.inputs.iter().all(|v| own.contains(v) || before(v)) {
                own.extend(node.outputs.iter().copied());
                nodes.push(*pos);
            }
        }
        nodes
    };
    let (want, have) = (late(0), late(n - 1));
    let mut keep: BTreeSet<usize> = BTreeSet::new();
    for pos in &have {
        let t = keep.len();
        if t < want.len() && p.nodes[*pos].op == p.nodes[want[t]].op && p.nodes[*pos].args == p.nodes[want[t]].args {
            keep.insert(*pos);
        }
    }
    steps[n - 1].retain(|pos| !have.contains(pos) || keep.contains(pos));
}

/// The most nodes a step takes in from before it.
const ABSORBED: usize = 16;

/// Each step with the arithmetic only it reads, made outside it (`k_t (x) v_t` as a product
/// of two slices, `exp(g_t)`): computed in the kernel from the slices, whose views are
/// regular, where the values themselves lie in no one array. Layout changes stay outside.
fn absorb(p: &Program, producer: &HashMap<ValueId, usize>, steps: &mut [Vec<usize>], states: &[ValueId]) {
    let mut readers: HashMap<ValueId, Vec<usize>> = HashMap::new();
    for (i, n) in p.nodes.iter().enumerate() {
        for v in &n.inputs {
            readers.entry(*v).or_default().push(i);
        }
    }
    let inside: BTreeSet<usize> = steps.iter().flatten().copied().collect();
    for step in steps.iter_mut() {
        let mut mine: BTreeSet<usize> = step.iter().copied().collect();
        let mut todo: Vec<usize> = step.clone();
        let mut taken = 0;
        while let Some(i) = todo.pop() {
            for v in p.nodes[i].inputs.iter().filter(|v| !states.contains(v)) {
                let Some(&j) = producer.get(v) else { continue };
                let n = &p.nodes[j];
                let arith = matches!(n.op.kind(), Kind::Unary | Kind::Binary | Kind::Ternary | Kind::Matmul)
                    && n.op != Op::AsType;
                let only_mine = readers[v].iter().all(|r| mine.contains(r)) && !p.outputs.contains(v);
                if arith && only_mine && !inside.contains(&j) && !mine.contains(&j) && taken < ABSORBED {
                    mine.insert(j);
                    todo.push(j);
                    taken += 1;
                }
            }
        }
        *step = mine.into_iter().collect();
    }
}

/// Per node, whether it feeds a later state.
fn feeds_a_state(p: &Program, state_of: &HashMap<ValueId, usize>) -> Vec<bool> {
    let mut reach = vec![false; p.values.len()];
    let mut feeds = vec![false; p.nodes.len()];
    for (pos, node) in p.nodes.iter().enumerate().rev() {
        let f = node.outputs.iter().any(|o| reach[*o] || state_of.get(o).is_some_and(|i| *i > 0));
        feeds[pos] = f;
        if f {
            for i in &node.inputs {
                reach[*i] = true;
            }
        }
    }
    feeds
}

/// The step of a node that feeds a later state: the step of its inputs, all one.
fn spine_step(ins: &[Class], n: usize) -> Option<Class> {
    let mut step = None;
    for c in ins {
        let j = match *c {
            Class::Outside => continue,
            Class::State(i) | Class::Step(i) => i,
            Class::After => return None,
        };
        if step.is_some_and(|s| s != j) || j >= n {
            return None;
        }
        step = Some(j);
    }
    step.map(Class::Step)
}

/// The step of a node that reads the steps without feeding a state: the step of the step
/// values it reads (the state before or after it too), or the step that ends at the one
/// state it reads; `After` otherwise.
fn side_step(ins: &[Class], n: usize) -> Class {
    let steps: BTreeSet<usize> =
        ins.iter().filter_map(|c| if let Class::Step(j) = c { Some(*j) } else { None }).collect();
    let states: BTreeSet<usize> =
        ins.iter().filter_map(|c| if let Class::State(i) = c { Some(*i) } else { None }).collect();
    if ins.contains(&Class::After) {
        return Class::After;
    }
    let j = match (steps.len(), states.len()) {
        (1, _) => *steps.first().unwrap(),
        (0, 1) if *states.first().unwrap() > 0 => states.first().unwrap() - 1,
        _ => return Class::After,
    };
    let fits = states.iter().all(|i| *i == j || *i == j + 1) && j < n;
    if fits {
        Class::Step(j)
    } else {
        Class::After
    }
}

/// Step `j` as step 0 with other values: the operands it reads in place of step 0's.
fn same(
    p: &Program,
    producer: &HashMap<ValueId, usize>,
    steps: &[Vec<usize>],
    states: &[ValueId],
    j: usize,
) -> Option<HashMap<ValueId, ValueId>> {
    let (a, b) = (&steps[0], &steps[j]);
    if a.len() != b.len() {
        return None;
    }
    let mut map: HashMap<ValueId, ValueId> = HashMap::from([(states[0], states[j]), (states[1], states[j + 1])]);
    let mut operands: HashMap<ValueId, ValueId> = HashMap::new();
    let in_step0: BTreeSet<ValueId> = a.iter().flat_map(|i| p.nodes[*i].outputs.iter().copied()).collect();
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (&p.nodes[*x], &p.nodes[*y]);
        let alike = x.op == y.op && x.args == y.args && x.inputs.len() == y.inputs.len();
        if !alike || x.outputs.len() != y.outputs.len() {
            return None;
        }
        let fits = |u: &ValueId, w: &ValueId| match map.get(u).or_else(|| operands.get(u)) {
            Some(k) => k == w,
            None => !in_step0.contains(u) && one_operand(p, producer, *u, *w),
        };
        let mut ys = y.inputs.clone();
        if commutes(x.op) && ys.len() == 2 && !x.inputs.iter().zip(&ys).all(|(u, w)| fits(u, w)) {
            ys.swap(0, 1);
            if !x.inputs.iter().zip(&ys).all(|(u, w)| fits(u, w)) {
                ys.swap(0, 1);
            }
        }
        for (u, w) in x.inputs.iter().zip(&ys) {
            let known = map.get(u).or_else(|| operands.get(u));
            match known {
                Some(k) if k != w => return None,
                Some(_) => {}
                None if in_step0.contains(u) || producer.get(u).is_some_and(|i| a.contains(i)) => return None,
                None => {
                    operands.insert(*u, *w);
                }
            }
        }
        for (u, w) in x.outputs.iter().zip(&y.outputs) {
            if p.value(*u) != p.value(*w) || map.insert(*u, *w).is_some_and(|k| k != *w) {
                return None;
            }
        }
    }
    Some(operands)
}

/// Whether `a`'s operands may be given in either order.
fn commutes(op: Op) -> bool {
    matches!(op, Op::Add | Op::Multiply | Op::Maximum | Op::Minimum | Op::LogAddExp)
}

/// Whether two steps' operands can be one operand of the kernel: one array, or views of one
/// array alike but for where they start (a step's `delta_t` against another's, not `A`).
fn one_operand(p: &Program, producer: &HashMap<ValueId, usize>, u: ValueId, w: ValueId) -> bool {
    let (a, b) = (view(p, producer, u, 0), view(p, producer, w, 0));
    u == w || (a.base == b.base && a.strides == b.strides)
}

/// A strided view of a flat array: the array, its offset and the strides of the view's axes.
#[derive(Clone, Debug, PartialEq)]
struct View {
    base: ValueId,
    offset: i64,
    strides: Vec<i64>,
}

/// `v` as a strided view of the array it slices, moves or broadcasts (itself where it is
/// made otherwise).
fn view(p: &Program, producer: &HashMap<ValueId, usize>, v: ValueId, depth: usize) -> View {
    let own = View { base: v, offset: 0, strides: row_major(&p.value(v).shape) };
    let Some(n) = producer.get(&v).map(|i| &p.nodes[*i]) else { return own };
    if depth > 16 || n.inputs.is_empty() {
        return own;
    }
    let x = n.inputs[0];
    let (from, to) = (&p.value(x).shape, &p.value(v).shape);
    let inner = || view(p, producer, x, depth + 1);
    let moved = match n.op {
        Op::Slice => sliced(n, inner()),
        Op::Squeeze | Op::ExpandDims | Op::Reshape => unit_reshaped(from, to, inner()),
        Op::Broadcast => Some(broadcast(from, to, inner())),
        Op::Gather => gathered(p, n, from, inner()),
        // Read in its own dtype: the kernel widens it to float32 exactly.
        Op::AsType if p.value(v).dtype == Dtype::Float32 && computable(p.value(x).dtype) => Some(inner()),
        Op::Transpose => n.args.first().and_then(Arg::const_ints).map(|perm| {
            let w = inner();
            View { strides: perm.iter().map(|a| w.strides[*a as usize]).collect(), ..w }
        }),
        _ => None,
    };
    moved.unwrap_or(own)
}

/// `x[t]`: a gather of one constant index along one axis, whole along the others (a slice).
fn gathered(p: &Program, n: &Node, from: &[i64], w: View) -> Option<View> {
    let ([_, index], [axes, sizes]) = (&n.inputs[..], &n.args[..]) else { return None };
    let ([axis], sizes) = (&axes.const_ints()?[..], sizes.const_ints()?) else { return None };
    let at = match &p.constant(*index)?.data {
        superopt_ir::ConstData::Scalar { expr: superopt_ir::ScalarExpr::Lit { v } } => *v as i64,
        _ => return None,
    };
    let a = *axis as usize;
    let whole = (0..from.len()).all(|d| sizes[d] == if d == a { 1 } else { from[d] });
    let fits = p.value(*index).shape.is_empty() && whole && (0..from[a]).contains(&at);
    fits.then(|| View { offset: w.offset + at * w.strides[a], ..w })
}

fn sliced(n: &Node, w: View) -> Option<View> {
    let (start, step) = (n.args.first()?.const_ints()?, n.args.get(2)?.const_ints()?);
    if step.iter().any(|k| *k <= 0) {
        return None;
    }
    let offset = w.offset + start.iter().zip(&w.strides).map(|(a, s)| a * s).sum::<i64>();
    Some(View { offset, strides: w.strides.iter().zip(&step).map(|(s, k)| s * k).collect(), ..w })
}

/// A reshape that only adds or drops axes of extent 1.
fn unit_reshaped(from: &[i64], to: &[i64], w: View) -> Option<View> {
    Some(View { strides: units_moved(from, to, &w.strides, 0)?, ..w })
}

/// `per_axis` (one entry per axis of `from`) for the axes of `to`, where `to` only adds or
/// drops axes of extent 1 (`fill` at the axes it adds); `None` for another reshape.
fn units_moved<T: Copy>(from: &[i64], to: &[i64], per_axis: &[T], fill: T) -> Option<Vec<T>> {
    let kept: Vec<usize> = (0..from.len()).filter(|a| from[*a] != 1).collect();
    let big: Vec<usize> = (0..to.len()).filter(|a| to[*a] != 1).collect();
    if kept.len() != big.len() || kept.iter().zip(&big).any(|(a, b)| from[*a] != to[*b]) {
        return None;
    }
    let mut out = vec![fill; to.len()];
    for (a, b) in kept.iter().zip(&big) {
        out[*b] = per_axis[*a];
    }
    Some(out)
}

fn broadcast(from: &[i64], to: &[i64], w: View) -> View {
    let lead = to.len() - from.len();
    let strides =
        (0..to.len()).map(|a| if a < lead || from[a - lead] != to[a] { 0 } else { w.strides[a - lead] }).collect();
    View { strides, ..w }
}

/// Where each axis of a value lies in the state: a state axis, or none (extent 1).
type Frame = Vec<Option<usize>>;

/// The kernel being built from step 0's nodes.
struct Builder<'a> {
    p: &'a Program,
    state: &'a [i64],
    axis: Option<usize>,
    insts: Vec<Inst>,
    /// A value of step 0 (or the state): its instruction and frame.
    vals: HashMap<ValueId, (usize, Frame)>,
    /// Operands by (value, frame): their number.
    operands: Vec<(ValueId, Frame)>,
}

impl Builder<'_> {
    fn push(&mut self, op: K, args: Vec<usize>) -> usize {
        self.insts.push(Inst { op, args });
        self.insts.len() - 1
    }

    /// The frame of an output of `shape` from `ins`' frames (an outside value's axes take
    /// the state axis at their place from the right).
    fn frame(&self, shape: &[i64], ins: &[Option<&Frame>], in_shapes: &[&[i64]]) -> Option<Frame> {
        self.frame_before(shape, ins, in_shapes, 0)
    }

    /// [`Builder::frame`] for the leading axes of values whose last `tail` axes are left out
    /// (a product's batch axes).
    fn frame_before(&self, shape: &[i64], ins: &[Option<&Frame>], in_shapes: &[&[i64]], tail: usize) -> Option<Frame> {
        let mut out: Frame = vec![None; shape.len()];
        for q in 0..shape.len() {
            if shape[q] == 1 {
                continue;
            }
            let back = shape.len() - q;
            let mut label = None;
            for (f, s) in ins.iter().zip(in_shapes) {
                let Some(f) = f else { continue };
                if back > s.len() || s[s.len() - back] == 1 {
                    continue;
                }
                let l = f[s.len() - back]?;
                if label.is_some_and(|m| m != l) {
                    return None;
                }
                label = Some(l);
            }
            out[q] = Some(label.or(self.default_axis(back + tail, shape[q]))?);
        }
        let named: BTreeSet<usize> = out.iter().flatten().copied().collect();
        (named.len() == out.iter().flatten().count()).then_some(out)
    }

    /// The state axis `back` places from the right, where its extent is `extent`.
    fn default_axis(&self, back: usize, extent: i64) -> Option<usize> {
        let r = self.state.len();
        (back <= r && self.state[r - back] == extent).then(|| r - back)
    }

    /// An outside value read at `frame` (its axes aligned from the right with it).
    fn operand(&mut self, v: ValueId, out: &Frame, out_shape: &[i64]) -> Option<usize> {
        let shape = &self.p.value(v).shape;
        if shape.len() > out_shape.len() {
            return None;
        }
        let lead = out_shape.len() - shape.len();
        let frame: Frame = (0..shape.len()).map(|a| if shape[a] == 1 { None } else { out[a + lead] }).collect();
        self.read(v, frame)
    }

    /// An outside value read at its own `frame`.
    fn read(&mut self, v: ValueId, frame: Frame) -> Option<usize> {
        let shape = &self.p.value(v).shape;
        let dtype = self.p.value(v).dtype;
        let readable = computable(dtype) || dtype == Dtype::Bool; // a mask, cast to float32 first
        if !readable || (0..shape.len()).any(|a| shape[a] != 1 && frame[a].is_none()) {
            return None;
        }
        let key = (v, frame);
        let j = match self.operands.iter().position(|o| *o == key) {
            Some(j) => j,
            None => {
                self.operands.push(key);
                self.operands.len() - 1
            }
        };
        Some(self.push(K::Input(j + 1), vec![]))
    }

    /// Step 0's node `n`: its instruction and frame, or `None` where no kernel runs it.
    fn node(&mut self, n: &Node) -> Option<()> {
        let [out] = n.outputs[..] else { return None };
        let (shape, dtype) = (self.p.value(out).shape.clone(), self.p.value(out).dtype);
        if !computable(dtype) {
            return None;
        }
        let owned: Vec<Option<Frame>> = n.inputs.iter().map(|v| self.vals.get(v).map(|(_, f)| f.clone())).collect();
        let known: Vec<Option<&Frame>> = owned.iter().map(Option::as_ref).collect();
        let p = self.p;
        let in_shapes: Vec<&[i64]> = n.inputs.iter().map(|v| p.value(*v).shape.as_slice()).collect();
        let (inst, frame) = match n.op {
            Op::Squeeze | Op::ExpandDims | Op::Reshape | Op::Broadcast | Op::Transpose => {
                let (i, f) = self.vals.get(&n.inputs[0])?.clone();
                (i, self.moved(n, &f, in_shapes[0], &shape)?)
            }
            Op::Reduce => {
                let (i, f) = self.vals.get(&n.inputs[0])?.clone();
                let made = self.reduced(n, i, &f, in_shapes[0])?;
                self.rounded(made, dtype)
            }
            // To float32 from a narrower float, exact; to a narrower one, a rounding.
            Op::AsType => {
                let (i, f) = self.vals.get(&n.inputs[0])?.clone();
                self.rounded((i, f), dtype)
            }
            Op::Matmul => {
                let made = self.product(n, &shape, &known, &in_shapes)?;
                self.rounded(made, dtype)
            }
            _ => {
                let op = arith(n)?;
                let frame = self.frame(&shape, &known, &in_shapes)?;
                let mut args = vec![];
                for v in &n.inputs {
                    args.push(match self.vals.get(v) {
                        Some((i, _)) => *i,
                        None => self.operand(*v, &frame, &shape)?,
                    });
                }
                let made = (self.push(op, args), frame);
                self.rounded(made, dtype)
            }
        };
        self.vals.insert(out, (inst, frame));
        Some(())
    }

    /// `made` rounded through `dtype` where the program holds the value so (kernels compute
    /// in float32).
    fn rounded(&mut self, made: (usize, Frame), dtype: Dtype) -> (usize, Frame) {
        match dtype {
            Dtype::Float32 => made,
            d => (self.push(K::Cast(d), vec![made.0]), made.1),
        }
    }

    /// A product `a @ b` whose contraction runs along the state's line (a row times the
    /// state, the state times a column) or has extent 1 (an outer product): elementwise
    /// products, summed over the line.
    fn product(
        &mut self,
        n: &Node,
        shape: &[i64],
        known: &[Option<&Frame>],
        in_shapes: &[&[i64]],
    ) -> Option<(usize, Frame)> {
        let ([a, b], [sa, sb]) = (&n.inputs[..], in_shapes) else { return None };
        let (ra, rb, r) = (sa.len(), sb.len(), shape.len());
        if ra < 2 || rb < 2 || sa[ra - 1] != sb[rb - 2] {
            return None;
        }
        let (fa, fb) = (known[0].cloned(), known[1].cloned());
        let along = sa[ra - 1] > 1;
        let line = match (&fa, &fb) {
            (Some(f), _) if along => f[ra - 1],
            (_, Some(f)) if along => f[rb - 2],
            _ => None,
        };
        if along && (line.is_none() || fa.as_ref().zip(fb.as_ref()).is_some_and(|(x, y)| x[ra - 1] != y[rb - 2])) {
            return None;
        }
        let batch_in: Vec<Option<&Frame>> = known.to_vec();
        let batch_shapes: Vec<&[i64]> = vec![&sa[..ra - 2], &sb[..rb - 2]];
        let mut frame = self.frame_before(&shape[..r - 2], &batch_in, &batch_shapes, 2)?;
        let side = |f: &Option<Frame>, at: usize, back: usize| match f {
            Some(f) => Some(f[at]),
            None => Some(if shape[r - back] == 1 { None } else { Some(self.default_axis(back, shape[r - back])?) }),
        };
        frame.push(side(&fa, ra.saturating_sub(2), 2)?);
        frame.push(side(&fb, rb - 1, 1)?);
        let named: BTreeSet<usize> = frame.iter().flatten().chain(line.iter()).copied().collect();
        if named.len() != frame.iter().flatten().count() + usize::from(along) {
            return None;
        }
        let lead = |s: &[i64]| r - s.len();
        let mine = |s: &[i64], own: [Option<usize>; 2]| -> Frame {
            let mut f: Frame = (0..s.len() - 2).map(|q| if s[q] == 1 { None } else { frame[q + lead(s)] }).collect();
            f.extend(own);
            f
        };
        let x = match &fa {
            Some(_) => self.vals[a].0,
            None => self.read(*a, mine(sa, [frame[r - 2], line]))?,
        };
        let y = match &fb {
            Some(_) => self.vals[b].0,
            None => self.read(*b, mine(sb, [line, frame[r - 1]]))?,
        };
        let mut inst = self.push(K::Binary(Binary::Mul), vec![x, y]);
        if along {
            let l = line?;
            if self.axis.is_some_and(|x| x != l) {
                return None;
            }
            self.axis = Some(l);
            inst = self.push(K::Reduce(Reduce::Sum), vec![inst]);
        }
        Some((inst, frame))
    }

    /// A shape change's frame: axes of extent 1 come and go, others keep their state axis.
    fn moved(&self, n: &Node, f: &Frame, from: &[i64], to: &[i64]) -> Option<Frame> {
        if n.op == Op::Transpose {
            let perm = n.args.first()?.const_ints()?;
            return Some(perm.iter().map(|a| f[*a as usize]).collect());
        }
        if n.op == Op::Broadcast {
            return self.frame(to, &[Some(f)], &[from]);
        }
        units_moved(from, to, f, None)
    }

    /// A reduction over the state's line axis (the first one fixes which axis that is).
    fn reduced(&mut self, n: &Node, x: usize, f: &Frame, from: &[i64]) -> Option<(usize, Frame)> {
        let r = match n.reduce_kind()? {
            ReduceKind::Sum => Reduce::Sum,
            ReduceKind::Max => Reduce::Max,
            ReduceKind::Min => Reduce::Min,
            _ => return None,
        };
        let axes = n.args.get(1)?.const_ints()?;
        let wide: Vec<usize> =
            axes.iter().map(|a| a.rem_euclid(from.len() as i64) as usize).filter(|a| from[*a] != 1).collect();
        let [a] = wide[..] else { return None };
        let line = f[a]?;
        if self.axis.is_some_and(|x| x != line) {
            return None;
        }
        self.axis = Some(line);
        let mut out = f.clone();
        for a in axes {
            out[a.rem_euclid(from.len() as i64) as usize] = None;
        }
        Some((self.push(K::Reduce(r), vec![x]), out))
    }
}

/// The kernel instruction of an elementwise node.
fn arith(n: &Node) -> Option<K> {
    if let Some((_, u)) = UNARY.iter().find(|(o, _)| *o == n.op) {
        return Some(K::Unary(*u));
    }
    if let Some((_, b)) = BINARY.iter().find(|(o, _)| *o == n.op) {
        return Some(K::Binary(*b));
    }
    let flag = matches!(n.args.first(), Some(Arg::Bool(true)));
    match n.op {
        Op::Sqrt => Some(K::Unary(if flag { Unary::Rsqrt } else { Unary::Sqrt })),
        Op::Equal if !flag => Some(K::Binary(Binary::Eq)),
        Op::Select => Some(K::Select),
        _ => None,
    }
}

/// The kernel for `states` and `steps`, if its nodes, operands and outputs fit one.
fn build(
    p: &Program,
    producer: &HashMap<ValueId, usize>,
    states: Vec<ValueId>,
    steps: Vec<Vec<usize>>,
    name: &str,
) -> Option<Found> {
    let shape = p.value(states[0]).shape.clone();
    let mut b = Builder { p, state: &shape, axis: None, insts: vec![], vals: HashMap::new(), operands: vec![] };
    let state_inst = b.push(K::Input(0), vec![]);
    let identity: Frame = (0..shape.len()).map(|a| (shape[a] != 1).then_some(a)).collect();
    b.vals.insert(states[0], (state_inst, identity.clone()));
    for pos in &steps[0] {
        b.node(&p.nodes[*pos])?;
    }
    let (next, frame) = b.vals.get(&states[1])?.clone();
    if frame != identity {
        return None;
    }
    let axis = b.axis.unwrap_or(shape.len() - 1);
    if shape[axis] > MAX_LINE {
        return None;
    }
    let per_step: Vec<HashMap<ValueId, ValueId>> =
        (0..steps.len()).map(|j| same(p, producer, &steps, &states, j)).collect::<Option<_>>()?;
    let mut operands = vec![Access { dtype: p.value(states[0]).dtype, offset: 0, step: 0, strides: row_major(&shape) }];
    let mut inputs = vec![states[0]];
    let mut masks = vec![];
    for (v, frame) in &b.operands {
        let (base, access) = access(p, producer, *v, frame, &per_step, shape.len())?;
        if p.value(base).dtype == Dtype::Bool {
            masks.push(inputs.len());
        }
        inputs.push(base);
        operands.push(access);
    }
    let readers = read_after(p, &steps, &states);
    if states[1..states.len() - 1].iter().any(|v| readers.contains(v) || p.outputs.contains(v)) {
        return None;
    }
    let mut outputs = vec![];
    let mut outs = vec![];
    for pos in &steps[0] {
        for v in &p.nodes[*pos].outputs {
            // Read after the loop at any step (a program output may be the last step's alone).
            let read = (0..steps.len()).any(|j| readers.contains(&step_value(p, &steps, *pos, j, *v)));
            if !read || *v == states[1] {
                continue;
            }
            let (value, frame) = b.vals[v].clone();
            let vshape = p.value(*v).shape.clone();
            let own = row_major(&vshape);
            let mut strides = vec![0; shape.len()];
            for (q, l) in frame.iter().enumerate() {
                if let Some(l) = l {
                    strides[*l] = own[q];
                }
            }
            outs.push(StepOut { value, dtype: p.value(*v).dtype, shape: vshape, strides });
            outputs.push(per_step.iter().enumerate().map(|(j, _)| step_value(p, &steps, *pos, j, *v)).collect());
        }
    }
    let final_read = readers.contains(states.last().unwrap()) || p.outputs.contains(states.last().unwrap());
    let insts = b.insts;
    let scan = Scan {
        name: name.into(),
        shape: shape.clone(),
        dtype: p.value(states[1]).dtype,
        axis,
        steps: steps.len() as i64,
        operands,
        insts,
        next,
        outputs: outs,
    };
    scan.plan()?;
    Some(Found { scan, states, steps, inputs, outputs, final_read, masks })
}

/// The value at step `j` of step 0's value `v` (made by node `pos`).
fn step_value(p: &Program, steps: &[Vec<usize>], pos: usize, j: usize, v: ValueId) -> ValueId {
    let t = steps[0].iter().position(|x| *x == pos).unwrap();
    let k = p.nodes[pos].outputs.iter().position(|o| *o == v).unwrap();
    p.nodes[steps[j][t]].outputs[k]
}

/// The values of the steps that nodes outside them (or the program's outputs) read.
fn read_after(p: &Program, steps: &[Vec<usize>], states: &[ValueId]) -> BTreeSet<ValueId> {
    let inside: BTreeSet<usize> = steps.iter().flatten().copied().collect();
    let made: BTreeSet<ValueId> = inside.iter().flat_map(|i| p.nodes[*i].outputs.iter().copied()).collect();
    let mut read: BTreeSet<ValueId> = p.outputs.iter().filter(|v| made.contains(v)).copied().collect();
    for (i, n) in p.nodes.iter().enumerate() {
        if !inside.contains(&i) {
            read.extend(n.inputs.iter().filter(|v| made.contains(v) || **v == *states.last().unwrap()));
        }
    }
    read
}

/// Operand `v` of step 0 at `frame`: the array the kernel reads and where each step's
/// value lies in it (the same value every step, or views a fixed distance apart).
fn access(
    p: &Program,
    producer: &HashMap<ValueId, usize>,
    v: ValueId,
    frame: &Frame,
    per_step: &[HashMap<ValueId, ValueId>],
    rank: usize,
) -> Option<(ValueId, Access)> {
    let values: Vec<ValueId> = per_step.iter().map(|m| m.get(&v).copied().unwrap_or(v)).collect();
    let views: Vec<View> = if values.iter().all(|w| *w == v) {
        let own = View { base: v, offset: 0, strides: row_major(&p.value(v).shape) };
        vec![own; values.len()]
    } else {
        values.iter().map(|w| view(p, producer, *w, 0)).collect()
    };
    let step = views.get(1).map_or(0, |w| w.offset - views[0].offset);
    let regular = views.iter().enumerate().all(|(j, w)| {
        w.base == views[0].base && w.strides == views[0].strides && w.offset == views[0].offset + j as i64 * step
    });
    if !regular {
        return None;
    }
    let mut strides = vec![0; rank];
    for (q, l) in frame.iter().enumerate() {
        if let Some(l) = l {
            strides[*l] = views[0].strides[q];
        }
    }
    // A boolean operand (a step's mask) is read as the float32 it is cast to (1 or 0).
    let dtype = match p.value(views[0].base).dtype {
        Dtype::Bool => Dtype::Float32,
        d => d,
    };
    computable(dtype).then_some((views[0].base, Access { dtype, offset: views[0].offset, step, strides }))
}

/// `p` with the kernel in place of the steps; the line that says so (`None`, and `p` as
/// it was, where the rest of the program cannot be ordered around the kernel).
fn apply(p: &mut Program, f: Found, target: Target) -> Option<String> {
    let before = p.clone();
    let line = format!("scan: {} ({})", super::describe(&f.scan), f.scan.name);
    let call = Call { body: Body::Scan(f.scan.clone()), target, tuned: vec![] };
    let last = *f.states.last().unwrap();
    let state_out = if f.final_read { last } else { p.push_value(p.value(last).clone()) };
    let mut outputs = vec![state_out];
    let mut tail = vec![];
    for (o, values) in f.scan.outputs.iter().zip(&f.outputs) {
        let mut shape = vec![f.scan.steps];
        shape.extend(&o.shape);
        let whole = p.push_value(Value { shape: shape.clone(), dtype: o.dtype });
        outputs.push(whole);
        for (j, v) in values.iter().enumerate() {
            tail.extend(take_step(p, whole, &shape, j as i64, *v));
        }
    }
    let mut inputs = f.inputs;
    let mut casts = vec![];
    for i in f.masks {
        let shape = p.value(inputs[i]).shape.clone();
        let as_float = p.push_value(Value { shape, dtype: Dtype::Float32 });
        let args = vec![Arg::Dtype(Dtype::Float32)];
        casts.push(Node { op: Op::AsType, args, inputs: vec![inputs[i]], outputs: vec![as_float] });
        inputs[i] = as_float;
    }
    let kernel = Node { op: Call::OP, args: vec![call.to_arg()], inputs, outputs };
    let gone: BTreeSet<usize> = f.steps.iter().flatten().copied().collect();
    let mut nodes: Vec<Node> =
        p.nodes.iter().enumerate().filter(|(i, _)| !gone.contains(i)).map(|(_, n)| n.clone()).collect();
    nodes.extend(casts);
    nodes.push(kernel);
    nodes.extend(tail);
    let (ordered, stuck) = crate::lower::topological(nodes, p);
    if !stuck.is_empty() {
        *p = before;
        return None;
    }
    p.nodes = ordered;
    // The steps' outputs, stacked back into sequences: one transpose each, not a node a step.
    superopt_ir::passes::flatten_concatenates(p);
    superopt_ir::passes::lanes_in_place(p);
    superopt_ir::passes::dead_code(p);
    Some(line)
}

/// `into` as step `j` of `whole` (`[steps, ..]`): `Squeeze(Slice(whole))`.
fn take_step(p: &mut Program, whole: ValueId, shape: &[i64], j: i64, into: ValueId) -> Vec<Node> {
    let mut start = vec![0; shape.len()];
    let mut stop = shape.to_vec();
    (start[0], stop[0]) = (j, j + 1);
    let mut one = shape.to_vec();
    one[0] = 1;
    let s = p.push_value(Value { shape: one, dtype: p.value(whole).dtype });
    let args = vec![Arg::ints(&start), Arg::ints(&stop), Arg::ints(&vec![1; shape.len()])];
    vec![
        Node { op: Op::Slice, args, inputs: vec![whole], outputs: vec![s] },
        Node { op: Op::Squeeze, args: vec![Arg::ints(&[0])], inputs: vec![s], outputs: vec![into] },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use superopt_ir::{Dim, OutputKind, Signature};

    /// How a test recurrence departs from the delta rule at one step.
    #[derive(Clone, Copy, PartialEq)]
    enum Twist {
        None,
        /// Step 6 subtracts its update instead of adding it.
        OtherOp,
        /// Each step's update also reads the step before's prediction.
        ReadsLastStep,
        /// Step 6 reads its keys from another row.
        OtherRow,
        /// The prediction sums over the value axis, the output over the key axis.
        TwoAxes,
        /// The update also adds the state times a matrix over its value axis (`s @ w`).
        TimesMatrix,
        /// The update also adds `k_t (x) v_t`, a product of two slices made outside the step.
        OuterOutside,
        /// As `OuterOutside`, but step `t` adds the product of step `t - 1` too.
        OuterShared,
        /// `a_t` read as `a[:, t]` by a gather of a constant index, not a slice.
        Gathered,
        /// Only the last step's prediction is returned (with the final state).
        LastOnly,
    }

    /// An unrolled delta rule as a trace spells it: state `s [2, 4, 8]` (heads, keys,
    /// values), `s = s * a_t; p = sum(s * k_t, keys); s += k_t * (v_t - p)` for `t < steps`,
    /// returning the predictions stacked along axis 1 and the final state.
    fn delta_rule(steps: i64, twist: Twist) -> Program {
        let mut p = Program {
            values: vec![],
            inputs: vec![],
            constants: vec![],
            nodes: vec![],
            outputs: vec![],
            signature: Signature::returning(OutputKind::Tuple),
        };
        let value = |p: &mut Program, shape: &[i64]| {
            p.values.push(Value { shape: shape.to_vec(), dtype: Dtype::Float32 });
            p.values.len() - 1
        };
        let (s0, a, k, v) = (
            value(&mut p, &[2, 4, 8]),
            value(&mut p, &[2, steps]),
            value(&mut p, &[2, steps, 4]),
            value(&mut p, &[2, steps, 8]),
        );
        let w = value(&mut p, &[8, 8]);
        p.inputs = vec![s0, a, k, v, w];
        let node = |p: &mut Program, op: Op, args: Vec<Arg>, inputs: Vec<ValueId>, shape: &[i64]| {
            let out = value(p, shape);
            p.nodes.push(Node { op, args, inputs, outputs: vec![out] });
            out
        };
        let lane = |p: &mut Program, x: ValueId, t: i64| {
            let shape = p.value(x).shape.clone();
            let (mut start, mut stop) = (vec![0; shape.len()], shape.clone());
            (start[1], stop[1]) = (t, t + 1);
            let mut one = shape.clone();
            one[1] = 1;
            let args = vec![Arg::ints(&start), Arg::ints(&stop), Arg::ints(&vec![1; shape.len()])];
            let sl = node(p, Op::Slice, args, vec![x], &one);
            one.remove(1);
            node(p, Op::Squeeze, vec![Arg::ints(&[1])], vec![sl], &one)
        };
        let sum = |axis: i64| vec![Arg::Int(Dim::constant(2)), Arg::ints(&[axis])];
        let (mut state, mut outs, mut last, mut shared) = (s0, vec![], None, None);
        for t in 0..steps {
            let at = if twist == Twist::Gathered {
                let c = value(&mut p, &[]);
                p.values[c].dtype = Dtype::Int32;
                let lit = superopt_ir::ScalarExpr::Lit { v: t as f64 };
                p.constants
                    .push(superopt_ir::Constant { value: c, data: superopt_ir::ConstData::Scalar { expr: lit } });
                let sizes = vec![Arg::ints(&[1]), Arg::ints(&[2, 1])];
                let g = node(&mut p, Op::Gather, sizes, vec![a, c], &[2, 1]);
                node(&mut p, Op::Squeeze, vec![Arg::ints(&[1])], vec![g], &[2])
            } else {
                lane(&mut p, a, t)
            };
            let at = node(&mut p, Op::ExpandDims, vec![Arg::ints(&[1, 2])], vec![at], &[2, 1, 1]);
            let decayed = node(&mut p, Op::Multiply, vec![], vec![state, at], &[2, 4, 8]);
            let row = if twist == Twist::OtherRow && t == 6 { (t + 1) % steps } else { t };
            let kt = lane(&mut p, k, row);
            let kt = node(&mut p, Op::ExpandDims, vec![Arg::ints(&[2])], vec![kt], &[2, 4, 1]);
            let m = node(&mut p, Op::Multiply, vec![], vec![decayed, kt], &[2, 4, 8]);
            let pred = if twist == Twist::TwoAxes {
                let r = node(&mut p, Op::Reduce, sum(2), vec![m], &[2, 4, 1]);
                node(&mut p, Op::Multiply, vec![], vec![r, kt], &[2, 4, 1])
            } else {
                node(&mut p, Op::Reduce, sum(1), vec![m], &[2, 1, 8])
            };
            let vt = lane(&mut p, v, t);
            let vt = node(&mut p, Op::ExpandDims, vec![Arg::ints(&[1])], vec![vt], &[2, 1, 8]);
            let mut d = node(&mut p, Op::Subtract, vec![], vec![vt, pred], &[2, 1, 8]);
            if let (Twist::ReadsLastStep, Some(l)) = (twist, last) {
                d = node(&mut p, Op::Add, vec![], vec![d, l], &[2, 1, 8]);
            }
            let mut u = node(&mut p, Op::Multiply, vec![], vec![kt, d], &[2, 4, 8]);
            if twist == Twist::TimesMatrix {
                let sw = node(&mut p, Op::Matmul, vec![], vec![decayed, w], &[2, 4, 8]);
                u = node(&mut p, Op::Add, vec![], vec![u, sw], &[2, 4, 8]);
            }
            if matches!(twist, Twist::OuterOutside | Twist::OuterShared) {
                let outer = node(&mut p, Op::Multiply, vec![], vec![kt, vt], &[2, 4, 8]);
                u = node(&mut p, Op::Add, vec![], vec![u, outer], &[2, 4, 8]);
                if let (Twist::OuterShared, Some(before)) = (twist, shared) {
                    u = node(&mut p, Op::Add, vec![], vec![u, before], &[2, 4, 8]);
                }
                shared = Some(outer);
            }
            let update = if twist == Twist::OtherOp && t == 6 { Op::Subtract } else { Op::Add };
            state = node(&mut p, update, vec![], vec![decayed, u], &[2, 4, 8]);
            let pred =
                if twist == Twist::TwoAxes { node(&mut p, Op::Reduce, sum(1), vec![state], &[2, 1, 8]) } else { pred };
            outs.push(pred);
            last = Some(pred);
        }
        if twist == Twist::LastOnly {
            p.outputs = vec![*outs.last().unwrap(), state];
            return p;
        }
        let stacked = node(&mut p, Op::Concatenate, vec![Arg::Int(Dim::constant(1))], outs, &[2, steps, 8]);
        p.outputs = vec![stacked, state];
        p
    }

    fn lowered(mut p: Program) -> (Program, Vec<String>) {
        let lines = lower(&mut p, Target::Mlx, &|| false);
        (p, lines)
    }

    fn scans(p: &Program) -> Vec<Scan> {
        p.nodes
            .iter()
            .filter_map(Call::of_node)
            .filter_map(|c| if let Body::Scan(s) = c.body { Some(s) } else { None })
            .collect()
    }

    #[test]
    fn an_unrolled_delta_rule_is_one_kernel() {
        let (p, lines) = lowered(delta_rule(12, Twist::None));
        let [s] = &scans(&p)[..] else { panic!("one scan: {lines:?}") };
        assert_eq!((s.steps, s.axis, s.shape.clone()), (12, 1, vec![2, 4, 8]));
        // The initial state, a, k and v (k read at two frames: as keys and in the update).
        assert_eq!(s.operands.len(), 4, "{s:?}");
        assert_eq!(s.operands[1].step, 1, "a step later is one element on in a [2, steps]");
        assert_eq!(s.operands[2].step, 4, "and four in k [2, steps, 4]");
        // The stacked predictions are one slice, transpose and reshape of the kernel's output.
        assert_eq!(p.nodes.len(), 4, "{:?}", p.nodes.iter().map(|n| n.op).collect::<Vec<_>>());
        assert_eq!(p.outputs.len(), 2);
    }

    #[test]
    fn a_state_held_in_bfloat16_is_rounded_to_it_each_step() {
        let mut p = delta_rule(12, Twist::None);
        p.values.iter_mut().for_each(|v| v.dtype = Dtype::Bfloat16);
        let (p, lines) = lowered(p);
        let [s] = &scans(&p)[..] else { panic!("one scan: {lines:?}") };
        assert_eq!((s.steps, s.dtype, s.operands[0].dtype), (12, Dtype::Bfloat16, Dtype::Bfloat16));
        assert_eq!(s.insts[s.next].op, K::Cast(Dtype::Bfloat16), "the next state is the update rounded");
        assert!(lines[0].contains("on a bfloat16 state"), "{lines:?}");
        // Near miss: a state whose dtype changes from one step to the next is no one chain.
        let mut mixed = delta_rule(12, Twist::None);
        let state_shape = vec![2, 4, 8];
        let mut k = 0;
        for v in mixed.values.iter_mut().filter(|v| v.shape == state_shape) {
            k += 1;
            if k % 2 == 0 {
                v.dtype = Dtype::Bfloat16;
            }
        }
        assert!(scans(&lowered(mixed).0).is_empty());
    }

    #[test]
    fn a_step_that_differs_ends_the_recurrence_there() {
        // Steps 0..6 repeat (six, under MIN_STEPS); step 6 subtracts.
        let (p, _) = lowered(delta_rule(12, Twist::OtherOp));
        assert!(scans(&p).is_empty());
        // With more steps after it, the steps after it are one.
        let (p, _) = lowered(delta_rule(20, Twist::OtherOp));
        let steps: Vec<i64> = scans(&p).iter().map(|s| s.steps).collect();
        assert_eq!(steps, [13]);
    }

    #[test]
    fn a_step_reading_the_step_before_beyond_its_state_is_no_kernel() {
        assert!(scans(&lowered(delta_rule(12, Twist::ReadsLastStep)).0).is_empty());
    }

    #[test]
    fn operands_a_step_reads_out_of_order_are_no_kernel() {
        let (p, _) = lowered(delta_rule(12, Twist::OtherRow));
        assert!(scans(&p).iter().all(|s| s.steps < 12), "step 6 reads row 7: no regular operand");
    }

    #[test]
    fn reductions_over_two_axes_of_the_state_are_no_kernel() {
        assert!(scans(&lowered(delta_rule(12, Twist::TwoAxes)).0).is_empty());
    }

    #[test]
    fn a_product_over_another_axis_of_the_state_is_no_kernel() {
        // The prediction sums over keys, `s @ w` over values: no one axis for a thread's line.
        assert!(scans(&lowered(delta_rule(12, Twist::TimesMatrix)).0).is_empty());
    }

    #[test]
    fn arithmetic_a_step_alone_reads_joins_the_step() {
        // `k_t * v_t` is made outside the step from two slices: the kernel computes it. (The
        // chain enters the loop by the update's branch: the states are the decayed ones,
        // the first decay and the last step's update run outside the kernel.)
        let (p, _) = lowered(delta_rule(12, Twist::OuterOutside));
        let [s] = &scans(&p)[..] else { panic!("one scan") };
        assert_eq!(s.steps, 11);
        // Read by two steps, each step's product is no step's own: no regular operand.
        assert!(scans(&lowered(delta_rule(12, Twist::OuterShared)).0).iter().all(|s| s.steps < 12));
    }

    #[test]
    fn a_value_only_the_last_step_returns_is_an_output_still() {
        let (p, _) = lowered(delta_rule(12, Twist::LastOnly));
        assert_eq!(scans(&p).len(), 1);
        let made: BTreeSet<ValueId> = p.nodes.iter().flat_map(|n| n.outputs.iter().copied()).collect();
        assert!(p.outputs.iter().all(|o| made.contains(o)), "every output is computed");
    }

    #[test]
    fn a_gather_of_one_constant_index_is_a_slice() {
        let (p, _) = lowered(delta_rule(12, Twist::Gathered));
        let [s] = &scans(&p)[..] else { panic!("one scan") };
        assert_eq!((s.steps, s.operands[1].step), (12, 1));
    }

    #[test]
    fn the_shortest_period_wins() {
        let sigs = [0, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 3];
        assert_eq!(period(&sigs), Some((1, 2, 9)));
        assert_eq!(period(&[1, 2, 3, 4, 5, 6, 7, 8]), None);
    }
}
