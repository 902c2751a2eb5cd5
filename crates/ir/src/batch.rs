//! Iterations batched. An unrolled loop applies the same primitive, lane by lane, to the
//! i-th slices of the same arrays (`q[:, :, i]`, traced as `Squeeze(Slice(q))`); where every
//! lane of an axis does, one node applies it to the whole arrays and each lane takes its
//! slice of the result: one launch instead of one per iteration, the same arithmetic. What
//! differs lane by lane otherwise (a recurrent state) stays per lane.
//!
//! It may touch: the nodes it batches (each becomes a slice of the batched node's output),
//! and `Split`s, which become one slice per part where more then batch; nothing else.
//! Elementwise primitives, `Matmul` over batch axes, `Reduce`, `ExpandDims`, `Squeeze`,
//! `Broadcast`, `Transpose`, `Slice` and a `Reshape` that keeps apart the axes before and
//! after the lanes' place (Mamba-2's groups repeated to heads, `repeat(B_t, h // g, 1)`)
//! batch; other primitives stay per lane.

use crate::ops::Kind;
use crate::program::*;
use crate::Op;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Where a lane's values come from: an array of the program, or a batch not built yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Base {
    Value(ValueId),
    Batch(usize),
}

/// A value that is lane `index` of `base` along `axis` (the base's shape is the value's
/// with the lanes' extent inserted at `axis`).
#[derive(Clone, Copy, Debug)]
struct Lane {
    base: Base,
    axis: usize,
    index: i64,
}

/// How one input of a batched node is fed: the lanes of a base, or one value for all.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Feed {
    Lanes(Base, usize),
    Same(ValueId),
}

/// Nodes that apply one primitive to the same feeds, by lane index.
#[derive(Clone, Debug)]
struct Batch {
    node: Node,
    feeds: Vec<Feed>,
    /// Node positions by lane index.
    members: BTreeMap<i64, usize>,
    /// The lanes' extent.
    n: i64,
    /// Where the lanes run in the batched node's output (see `out_axis`), once accepted.
    out: usize,
}

impl Batch {
    /// Where the lanes run in the inputs fed by lanes (the first such input's axis).
    fn lane_axis(&self) -> usize {
        self.feeds.iter().find_map(|f| if let Feed::Lanes(_, a) = f { Some(*a) } else { None }).unwrap()
    }
}

/// Batches the iterations of each of `plan`'s programs whose shapes are those of one size:
/// the slices batching writes give every axis its traced extent, which a program shared by
/// sizes whose dims vary would keep at other sizes (a slice past the end is cut short, not
/// refused). How many batches it made.
pub fn batch_plan(plan: &mut crate::Plan) -> usize {
    let fixed = |g: &crate::Guard| g.varying().is_empty();
    plan.variants.iter_mut().filter(|(g, _)| fixed(g)).map(|(_, p)| batch_lanes(p)).sum()
}

/// Batches the program's iterations (see the module doc); how many batches it made. A
/// `Split` (Mamba's `delta, B, C` of each step's projection) becomes one slice per part
/// where that lets more batch: slices batch, a node of several outputs does not.
pub fn batch_lanes(p: &mut Program) -> usize {
    let mut sliced = p.clone();
    if splits_to_slices(&mut sliced) == 0 {
        return batch_lanes_as_is(p);
    }
    let with = batch_lanes_as_is(&mut sliced);
    let without = batch_lanes_as_is(p);
    if with > without {
        *p = sliced;
        return with;
    }
    without
}

/// Each `Split` with constant indices as one `Slice` per part, the same values; how many.
fn splits_to_slices(p: &mut Program) -> usize {
    let mut count = 0;
    for node in std::mem::take(&mut p.nodes) {
        match split_parts(p, &node) {
            Some((axis, parts)) => {
                count += 1;
                let shape = p.value(node.inputs[0]).shape.clone();
                for ((start, stop), out) in parts.into_iter().zip(&node.outputs) {
                    let (mut from, mut to) = (vec![0; shape.len()], shape.clone());
                    (from[axis], to[axis]) = (start, stop);
                    let args = vec![Arg::ints(&from), Arg::ints(&to), Arg::ints(&vec![1; shape.len()])];
                    p.nodes.push(Node { op: Op::Slice, args, inputs: node.inputs.clone(), outputs: vec![*out] });
                }
            }
            None => p.nodes.push(node),
        }
    }
    count
}

/// A split's axis and its parts' (start, stop) there, where its indices and input shape are
/// constant.
fn split_parts(p: &Program, node: &Node) -> Option<(usize, Vec<(i64, i64)>)> {
    if node.op != Op::Split {
        return None;
    }
    let shape = &p.value(*node.inputs.first()?).shape;
    let indices = node.args.first()?.const_ints()?;
    let axis = norm(&[node.args.get(1)?.int()?.as_const()?], shape.len())[0];
    let bounds: Vec<i64> = std::iter::once(0).chain(indices).chain([shape[axis]]).collect();
    let parts: Vec<(i64, i64)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
    (parts.len() == node.outputs.len() && parts.iter().all(|(a, b)| a <= b)).then_some((axis, parts))
}

fn batch_lanes_as_is(p: &mut Program) -> usize {
    let producer: HashMap<ValueId, usize> =
        p.nodes.iter().enumerate().flat_map(|(i, n)| n.outputs.iter().map(move |o| (*o, i))).collect();
    let mut lanes: HashMap<ValueId, Lane> = HashMap::new();
    for n in &p.nodes {
        if let Some((out, lane)) = sliced_lane(p, &producer, n) {
            lanes.insert(out, lane);
        }
    }
    let mut batches: Vec<Batch> = vec![];
    // Node position -> (its batch, its lane index).
    let mut batched_at: HashMap<usize, (usize, i64)> = HashMap::new();
    let mut refused: HashSet<usize> = HashSet::new();
    loop {
        let extents: Vec<i64> = batches.iter().map(|b| b.n).collect();
        let found = complete_batches(p, &lanes, (&batched_at, &refused), &extents);
        if found.is_empty() {
            break;
        }
        for mut b in found {
            let k = batches.len();
            let Some(axis) = out_axis(p, &b) else {
                // Complete but not batchable (lanes at a product's matrix axis): per lane.
                refused.extend(b.members.values().copied());
                continue;
            };
            b.out = axis;
            for (i, pos) in &b.members {
                batched_at.insert(*pos, (k, *i));
                lanes.insert(p.nodes[*pos].outputs[0], Lane { base: Base::Batch(k), axis, index: *i });
            }
            batches.push(b);
        }
    }
    if batches.is_empty() {
        return 0;
    }
    rebuild(p, &batches, &batched_at);
    crate::passes::dead_code(p);
    batches.len()
}

/// `Squeeze(Slice(x))` that takes index `i` of one axis of `x` and all of the others.
fn sliced_lane(p: &Program, producer: &HashMap<ValueId, usize>, n: &Node) -> Option<(ValueId, Lane)> {
    if n.op != Op::Squeeze {
        return None;
    }
    let squeezed = n.args.first()?.const_ints()?;
    let slice = &p.nodes[*producer.get(n.inputs.first()?)?];
    if slice.op != Op::Slice || slice.args.len() != 3 {
        return None;
    }
    let shape = &p.value(*slice.inputs.first()?).shape;
    let (start, stop, strides) =
        (slice.args[0].const_ints()?, slice.args[1].const_ints()?, slice.args.get(2)?.const_ints()?);
    let cut: Vec<usize> =
        (0..shape.len()).filter(|d| !(start[*d] == 0 && stop[*d] == shape[*d] && strides[*d] == 1)).collect();
    let [axis] = cut[..] else { return None };
    let one = stop[axis] == start[axis] + 1 && strides[axis] == 1 && squeezed == [axis as i64];
    one.then(|| (n.outputs[0], Lane { base: Base::Value(slice.inputs[0]), axis, index: start[axis] }))
}

/// Node `n` as lane `index` of `whole` along `axis` (`Squeeze(Slice(whole))`): `(whole,
/// axis, index)`.
pub fn lane_of(p: &Program, producer: &HashMap<ValueId, usize>, n: &Node) -> Option<(ValueId, usize, i64)> {
    match sliced_lane(p, producer, n)?.1 {
        Lane { base: Base::Value(whole), axis, index } => Some((whole, axis, index)),
        Lane { base: Base::Batch(_), .. } => None,
    }
}

/// The batches every one of whose lanes is present, among nodes not batched yet.
fn complete_batches(
    p: &Program,
    lanes: &HashMap<ValueId, Lane>,
    (batched_at, refused): (&HashMap<usize, (usize, i64)>, &HashSet<usize>),
    extents: &[i64],
) -> Vec<Batch> {
    let mut open: BTreeMap<String, Batch> = BTreeMap::new();
    for (pos, node) in p.nodes.iter().enumerate() {
        if batched_at.contains_key(&pos) || refused.contains(&pos) || node.outputs.len() != 1 || !batches(node.op) {
            continue;
        }
        let mut index = None;
        let mut feeds = vec![];
        let mut n = 0;
        for v in &node.inputs {
            match lanes.get(v) {
                Some(l) if index.is_none_or(|i| i == l.index) => {
                    index = Some(l.index);
                    feeds.push(Feed::Lanes(l.base, l.axis));
                    n = match l.base {
                        Base::Value(v) => p.value(v).shape[l.axis],
                        Base::Batch(k) => extents[k],
                    };
                }
                Some(_) => {
                    index = None;
                    break;
                }
                None => feeds.push(Feed::Same(*v)),
            }
        }
        let Some(i) = index else { continue };
        let key = format!("{:?}|{:?}|{:?}|{:?}", node.op, node.args, p.value(node.outputs[0]), feeds);
        let b =
            open.entry(key).or_insert_with(|| Batch { node: node.clone(), feeds, members: BTreeMap::new(), n, out: 0 });
        b.members.insert(i, pos);
    }
    open.into_values().filter(|b| b.n >= 2 && b.members.keys().copied().eq(0..b.n)).collect()
}

fn batches(op: Op) -> bool {
    matches!(op.kind(), Kind::Unary | Kind::Binary | Kind::Ternary)
        || matches!(
            op,
            Op::Matmul
                | Op::AddMM
                | Op::Reduce
                | Op::ExpandDims
                | Op::Squeeze
                | Op::Broadcast
                | Op::Transpose
                | Op::Slice
                | Op::Reshape
        )
}

/// Where the lanes run in a batch's output; `None` where it cannot batch (lanes at
/// different axes, a matrix axis of a product).
fn out_axis(p: &Program, b: &Batch) -> Option<usize> {
    let a = b.lane_axis();
    if b.feeds.iter().any(|f| matches!(f, Feed::Lanes(_, x) if *x != a)) {
        return None;
    }
    let shape = &p.value(b.node.inputs[0]).shape;
    let (rank, out_rank) = (shape.len(), p.value(b.node.outputs[0]).shape.len());
    let elementwise = matches!(b.node.op.kind(), Kind::Unary | Kind::Binary | Kind::Ternary | Kind::Matmul);
    // Shared inputs are broadcast along the lanes: they must have the lanes' rank.
    if elementwise && b.node.inputs.iter().any(|v| p.value(*v).shape.len() != rank) {
        return None;
    }
    match b.node.op {
        Op::Matmul | Op::AddMM if rows_of_product(p, b) => Some(a),
        Op::AddMM => None,
        Op::Matmul if a + 2 > rank => None,
        Op::Matmul => (b.feeds.len() == 2).then_some(a),
        Op::ExpandDims => {
            let new = norm(&b.node.args.first()?.const_ints()?, out_rank);
            let kept: Vec<usize> = (0..out_rank).filter(|d| !new.contains(d)).collect();
            Some(kept.get(a).copied().unwrap_or(out_rank))
        }
        Op::Squeeze => {
            let gone = norm(&b.node.args.first()?.const_ints()?, rank);
            (!gone.contains(&a)).then(|| a - gone.iter().filter(|g| **g < a).count())
        }
        Op::Broadcast => Some(a + out_rank - rank),
        // Arguments that depend on the call's dims (a shapeless variant) stay per lane.
        Op::Reduce => b.node.args.get(1)?.const_ints().map(|_| a),
        Op::Slice => (b.node.args.len() == 3 && b.node.args.iter().all(|x| x.const_ints().is_some())).then_some(a),
        Op::Transpose => {
            let perm = b.node.args.first()?.const_ints()?;
            Some(perm.iter().filter(|d| (**d as usize) < a).count())
        }
        Op::Reshape => {
            b.node.args.first()?.const_ints()?;
            reshaped_lanes(shape, a, &p.value(b.node.outputs[0]).shape)
        }
        _ => Some(a),
    }
}

/// Where the lanes go in a reshape of each lane from `shape` (lanes at `a` in the whole) to
/// `out`: a place in `out` before which as many elements lie as before `a` in `shape` (`a`
/// itself where it is one, so that the lanes stay where their neighbours have them, else
/// the first). Each lane's elements then keep their row-major order in the whole, so one
/// reshape of the whole is every lane's. None where the reshape mixes those before the
/// lanes' place with those after it.
fn reshaped_lanes(shape: &[i64], a: usize, out: &[i64]) -> Option<usize> {
    let before: i64 = shape[..a].iter().product();
    let fits = |k: &usize| out[..*k].iter().product::<i64>() == before;
    Some(a).filter(|k| *k <= out.len() && fits(k)).or_else(|| (0..=out.len()).find(fits))
}

/// A product whose lanes are rows (`x_t @ W`, `x_t` a `[M, K]` lane taken just before its
/// last axis) of one shared matrix: rows multiply alone, so the lanes stacked before `K`
/// are more rows, and `W` is used as it is.
fn rows_of_product(p: &Program, b: &Batch) -> bool {
    let rank = p.value(b.node.inputs[0]).shape.len();
    let product = match b.feeds[..] {
        [Feed::Lanes(..), Feed::Same(_)] => b.node.op == Op::Matmul,
        // `c + x_t @ W` (a biased `nn.Linear`): `c` gets the lanes as an elementwise input does.
        [Feed::Lanes(..), Feed::Same(_), Feed::Same(_)] => b.node.op == Op::AddMM,
        _ => false,
    };
    match b.feeds.get(..2) {
        Some(&[Feed::Lanes(_, a), Feed::Same(w)]) => product && a + 1 == rank && p.value(w).shape.len() == 2,
        _ => false,
    }
}

fn norm(axes: &[i64], rank: usize) -> Vec<usize> {
    axes.iter().map(|x| if *x < 0 { (rank as i64 + x) as usize } else { *x as usize }).collect()
}

/// `shape` with `n` inserted at `axis`.
fn with_lanes(shape: &[i64], axis: usize, n: i64) -> Vec<i64> {
    let mut s = shape.to_vec();
    s.insert(axis, n);
    s
}

/// An unbatched axis `d` in the numbering with the lanes at `a`.
fn shift(d: usize, a: usize) -> i64 {
    (if d < a { d } else { d + 1 }) as i64
}

/// The batched node's arguments, for lanes at input axis `a` and output axis `out`.
fn batched_args(p: &Program, b: &Batch, a: usize, out: usize) -> Vec<Arg> {
    let node = &b.node;
    let rank = p.value(node.inputs[0]).shape.len();
    let out_rank = p.value(node.outputs[0]).shape.len();
    let axes = |i: usize, r: usize, at: usize| -> Vec<i64> {
        norm(&node.args[i].const_ints().unwrap(), r).into_iter().map(|d| shift(d, at)).collect()
    };
    match node.op {
        Op::ExpandDims => vec![Arg::ints(&axes(0, out_rank, out))],
        Op::Squeeze => vec![Arg::ints(&axes(0, rank, a))],
        Op::Reduce => vec![node.args[0].clone(), Arg::ints(&axes(1, rank, a))],
        Op::Broadcast | Op::Reshape => vec![Arg::ints(&with_lanes(&p.value(node.outputs[0]).shape, out, b.n))],
        Op::Transpose => {
            let perm = node.args[0].const_ints().unwrap();
            let mut lifted: Vec<i64> = perm.iter().map(|d| shift(*d as usize, a)).collect();
            lifted.insert(out, a as i64);
            vec![Arg::ints(&lifted)]
        }
        Op::Slice => {
            let mut parts = vec![];
            for (k, fill) in [(0, 0), (1, b.n), (2, 1)] {
                let mut xs = node.args[k].const_ints().unwrap();
                xs.insert(a, fill);
                parts.push(Arg::ints(&xs));
            }
            parts
        }
        _ => node.args.clone(),
    }
}

/// The program with each batch's node at its first member's place and every member a
/// slice of its output.
fn rebuild(p: &mut Program, batches: &[Batch], batched_at: &HashMap<usize, (usize, i64)>) {
    let old = std::mem::take(&mut p.nodes);
    let mut made: Vec<Option<ValueId>> = vec![None; batches.len()];
    for (pos, node) in old.into_iter().enumerate() {
        let Some(&(k, index)) = batched_at.get(&pos) else {
            p.nodes.push(node);
            continue;
        };
        if made[k].is_none() {
            made[k] = Some(emit_batch(p, &batches[k], &made));
        }
        take_lane(p, made[k].unwrap(), batches[k].out, index, node.outputs[0]);
    }
}

fn push(p: &mut Program, op: Op, args: Vec<Arg>, inputs: Vec<ValueId>, value: Value) -> ValueId {
    p.values.push(value);
    let out = p.values.len() - 1;
    p.nodes.push(Node { op, args, inputs, outputs: vec![out] });
    out
}

/// The batch's node on whole arrays; values the lanes share are broadcast along the lanes
/// where the primitive is elementwise or a product.
fn emit_batch(p: &mut Program, b: &Batch, made: &[Option<ValueId>]) -> ValueId {
    let (a, out) = (b.lane_axis(), b.out);
    let mut inputs = vec![];
    let rows = rows_of_product(p, b);
    for (i, f) in b.feeds.iter().enumerate() {
        inputs.push(match f {
            Feed::Lanes(Base::Value(v), _) => *v,
            Feed::Lanes(Base::Batch(k), _) => made[*k].unwrap(),
            Feed::Same(v) if rows && i == 1 => *v,
            Feed::Same(v) => {
                let value = p.value(*v).clone();
                let one = Value { shape: with_lanes(&value.shape, a, 1), dtype: value.dtype };
                let e = push(p, Op::ExpandDims, vec![Arg::ints(&[a as i64])], vec![*v], one);
                let full = with_lanes(&value.shape, a, b.n);
                push(p, Op::Broadcast, vec![Arg::ints(&full)], vec![e], Value { shape: full, dtype: value.dtype })
            }
        });
    }
    let v = p.value(b.node.outputs[0]).clone();
    let shape = with_lanes(&v.shape, out, b.n);
    let args = batched_args(p, b, a, out);
    push(p, b.node.op, args, inputs, Value { shape, dtype: v.dtype })
}

/// `into` as lane `index` of `whole` along `axis`: `Squeeze(Slice(whole))`.
fn take_lane(p: &mut Program, whole: ValueId, axis: usize, index: i64, into: ValueId) {
    let shape = p.value(whole).shape.clone();
    let mut start = vec![0; shape.len()];
    let mut stop = shape.clone();
    (start[axis], stop[axis]) = (index, index + 1);
    let mut one = shape.clone();
    one[axis] = 1;
    let dtype = p.value(whole).dtype;
    let args = vec![Arg::ints(&start), Arg::ints(&stop), Arg::ints(&vec![1; shape.len()])];
    let s = push(p, Op::Slice, args, vec![whole], Value { shape: one, dtype });
    p.nodes.push(Node { op: Op::Squeeze, args: vec![Arg::ints(&[axis as i64])], inputs: vec![s], outputs: vec![into] });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dtype;

    /// Input `x` of `shape`, lane `i` of `axis` for each of `lanes`, `op` on each lane
    /// (with a second operand: itself for a product), every result an output.
    fn program(shape: &[i64], axis: usize, lanes: &[i64], op: Op) -> Program {
        let f32 = |shape: Vec<i64>| Value { shape, dtype: Dtype::Float32 };
        let signature = Signature {
            params: vec![Param::Array { name: "x".into(), input: 0, keyword: false }],
            ..Signature::returning(OutputKind::Tuple)
        };
        let mut p = Program {
            values: vec![f32(shape.to_vec())],
            inputs: vec![0],
            constants: vec![],
            nodes: vec![],
            outputs: vec![],
            signature,
        };
        let mut lane_shape = shape.to_vec();
        lane_shape.remove(axis);
        for i in lanes {
            let (mut start, mut stop) = (vec![0; shape.len()], shape.to_vec());
            (start[axis], stop[axis]) = (*i, i + 1);
            let mut one = shape.to_vec();
            one[axis] = 1;
            let args = vec![Arg::ints(&start), Arg::ints(&stop), Arg::ints(&vec![1; shape.len()])];
            let s = push(&mut p, Op::Slice, args, vec![0], f32(one));
            let l = push(&mut p, Op::Squeeze, vec![Arg::ints(&[axis as i64])], vec![s], f32(lane_shape.clone()));
            let inputs = if op == Op::Matmul { vec![l, l] } else { vec![l] };
            let out = push(&mut p, op, vec![], inputs, f32(lane_shape.clone()));
            p.outputs.push(out);
        }
        p
    }

    /// Inputs `x` [1, T, K], `w` of `w_shape`, `c` [1, N]; per step `t` the product of
    /// `x[:, t]` and `w` (with `c` added by `AddMM` where `op` is it), split in two along
    /// its last axis where `split`; every result an output.
    fn steps_of_a_product(t: i64, w_shape: &[i64], op: Op, split: bool) -> Program {
        let f32 = |shape: Vec<i64>| Value { shape, dtype: Dtype::Float32 };
        let (k, n) = (w_shape[w_shape.len() - 2], w_shape[w_shape.len() - 1]);
        let mut p = program(&[1, t, k], 1, &[], Op::Exp);
        p.values.push(f32(w_shape.to_vec()));
        p.values.push(f32(vec![1, n]));
        p.inputs.extend([1, 2]);
        let out_shape = if w_shape.len() == 3 { vec![w_shape[0], 1, n] } else { vec![1, n] };
        for i in 0..t {
            let args = vec![Arg::ints(&[0, i, 0]), Arg::ints(&[1, i + 1, k]), Arg::ints(&[1, 1, 1])];
            let s = push(&mut p, Op::Slice, args, vec![0], f32(vec![1, 1, k]));
            let l = push(&mut p, Op::Squeeze, vec![Arg::ints(&[1])], vec![s], f32(vec![1, k]));
            let (inputs, args) = match op {
                Op::AddMM => (vec![l, 1, 2], vec![Arg::Float(1.0), Arg::Float(1.0)]),
                _ => (vec![l, 1], vec![]),
            };
            let m = push(&mut p, op, args, inputs, f32(out_shape.clone()));
            if !split {
                p.outputs.push(m);
                continue;
            }
            let mut half = out_shape.clone();
            *half.last_mut().unwrap() = n / 2;
            let (a, b) = (p.values.len(), p.values.len() + 1);
            p.values.extend([f32(half.clone()), f32(half)]);
            let args = vec![Arg::ints(&[n / 2]), Arg::Int(crate::Dim::constant(-1))];
            p.nodes.push(Node { op: Op::Split, args, inputs: vec![m], outputs: vec![a, b] });
            p.outputs.extend([a, b]);
        }
        p
    }

    #[test]
    fn steps_that_multiply_one_matrix_are_rows_of_one_product() {
        for op in [Op::Matmul, Op::AddMM] {
            let mut p = steps_of_a_product(6, &[8, 4], op, false);
            assert_eq!(batch_lanes(&mut p), 1, "{op}");
            assert_eq!(count(&p, op), 1);
            let m = p.nodes.iter().find(|n| n.op == op).unwrap();
            assert_eq!(p.value(m.inputs[0]).shape, [1, 6, 8], "x whole: its steps are rows");
            assert_eq!(p.value(m.inputs[1]).shape, [8, 4], "the matrix as it is");
            assert_eq!(p.value(m.outputs[0]).shape, [1, 6, 4]);
        }
        // Mamba's `delta, B, C = split(x_t @ W)`: the parts become slices, which batch too.
        let mut p = steps_of_a_product(6, &[8, 4], Op::Matmul, true);
        assert_eq!(batch_lanes(&mut p), 3, "the product and the two parts' slices");
        assert_eq!((count(&p, Op::Matmul), count(&p, Op::Split)), (1, 0));
    }

    #[test]
    fn steps_of_a_batched_matrix_or_without_every_step_stay_per_step() {
        // A matrix with its own batch axis: the steps would meet it at the wrong axis.
        let mut p = steps_of_a_product(6, &[2, 8, 4], Op::Matmul, false);
        assert_eq!(batch_lanes(&mut p), 0);
        assert_eq!(count(&p, Op::Matmul), 6);
        // Splits where nothing batches stay splits.
        let mut p = steps_of_a_product(1, &[8, 4], Op::Matmul, true);
        assert_eq!(batch_lanes(&mut p), 0);
        assert_eq!(count(&p, Op::Split), 1);
    }

    #[test]
    fn a_program_shared_by_sizes_whose_dims_vary_keeps_its_loops() {
        let p = steps_of_a_product(6, &[8, 4], Op::Matmul, false);
        let shapes: Vec<(Vec<i64>, Dtype)> =
            p.inputs.iter().map(|v| (p.value(*v).shape.clone(), Dtype::Float32)).collect();
        let mut fixed =
            crate::Plan { variants: vec![(crate::Guard::exact(&shapes), p.clone())], per_size_because: None };
        assert_eq!(batch_plan(&mut fixed), 1, "one size's shapes: batched");
        // The matrix's width varies by size: a batched program's lane slices would keep this
        // size's width at every other (a slice past the end is cut short).
        let mut varying = crate::Guard::exact(&shapes);
        varying.inputs[1].dims[1] = None;
        let mut shared = crate::Plan { variants: vec![(varying, p)], per_size_because: None };
        assert_eq!(batch_plan(&mut shared), 0);
        assert_eq!(count(&shared.variants[0].1, Op::Matmul), 6);
    }

    fn count(p: &Program, op: Op) -> usize {
        p.nodes.iter().filter(|n| n.op == op).count()
    }

    #[test]
    fn every_lane_of_an_axis_is_one_primitive() {
        let mut p = program(&[3, 4, 5], 1, &[0, 1, 2, 3], Op::Exp);
        assert_eq!(batch_lanes(&mut p), 1);
        assert_eq!(count(&p, Op::Exp), 1);
        let exp = p.nodes.iter().find(|n| n.op == Op::Exp).unwrap();
        assert_eq!(p.value(exp.inputs[0]).shape, [3, 4, 5], "the whole input");
        assert_eq!(p.value(exp.outputs[0]).shape, [3, 4, 5]);
        // Each output is its lane of the batched result.
        assert!(p.outputs.iter().all(|o| p.nodes.iter().any(|n| n.op == Op::Squeeze && n.outputs == [*o])));
        // Square matrices by batch lanes: a product per lane becomes one batched product.
        let mut p = program(&[4, 2, 3, 3], 0, &[0, 1, 2, 3], Op::Matmul);
        assert_eq!(batch_lanes(&mut p), 1);
        assert_eq!(count(&p, Op::Matmul), 1);
    }

    /// Input `x` [b, T, 2, 3] (T lanes along axis 1), each lane reshaped to `to`; every
    /// result an output.
    fn reshaped_steps(b: i64, t: i64, to: &[i64]) -> Program {
        let f32 = |shape: Vec<i64>| Value { shape, dtype: Dtype::Float32 };
        let mut p = program(&[b, t, 2, 3], 1, &[], Op::Exp);
        for i in 0..t {
            let args = vec![Arg::ints(&[0, i, 0, 0]), Arg::ints(&[b, i + 1, 2, 3]), Arg::ints(&[1, 1, 1, 1])];
            let s = push(&mut p, Op::Slice, args, vec![0], f32(vec![b, 1, 2, 3]));
            let l = push(&mut p, Op::Squeeze, vec![Arg::ints(&[1])], vec![s], f32(vec![b, 2, 3]));
            let r = push(&mut p, Op::Reshape, vec![Arg::ints(to)], vec![l], f32(to.to_vec()));
            p.outputs.push(r);
        }
        p
    }

    #[test]
    fn a_reshape_of_each_lane_that_keeps_the_lanes_place_is_one_reshape() {
        // Mamba-2's `repeat(B_t, r, axis=1)`: [b, g, r, n] merged to [b, g * r, n] per step.
        let mut p = reshaped_steps(2, 5, &[2, 6]);
        assert_eq!(batch_lanes(&mut p), 1);
        assert_eq!(count(&p, Op::Reshape), 1);
        let r = p.nodes.iter().find(|n| n.op == Op::Reshape).unwrap();
        assert_eq!(p.value(r.inputs[0]).shape, [2, 5, 2, 3], "the whole input");
        assert_eq!(p.value(r.outputs[0]).shape, [2, 5, 6]);
        assert_eq!(r.args[0].const_ints().unwrap(), [2, 5, 6]);
        // Split apart again, and with axes of one around the lanes' place.
        let mut p = reshaped_steps(2, 5, &[1, 2, 3, 2]);
        assert_eq!(batch_lanes(&mut p), 1);
        let r = p.nodes.iter().find(|n| n.op == Op::Reshape).unwrap();
        assert_eq!(p.value(r.outputs[0]).shape, [1, 2, 5, 3, 2]);
        // A batch of one (Mamba-2's `[1, g, r, n]`): as many elements before axis 0 as before
        // axis 1; the lanes stay at 1, where the steps' other values have them.
        let mut p = reshaped_steps(1, 5, &[1, 6]);
        assert_eq!(batch_lanes(&mut p), 1);
        let r = p.nodes.iter().find(|n| n.op == Op::Reshape).unwrap();
        assert_eq!(p.value(r.outputs[0]).shape, [1, 5, 6], "at 1, not before the batch of one");
    }

    #[test]
    fn a_reshape_mixing_axes_across_the_lanes_place_stays_per_lane() {
        // [2, 2, 3] to [4, 3]: the axis before the lanes merges with one after.
        let mut p = reshaped_steps(2, 5, &[4, 3]);
        assert_eq!(batch_lanes(&mut p), 0);
        assert_eq!(count(&p, Op::Reshape), 5);
        let mut p = reshaped_steps(2, 5, &[12]);
        assert_eq!(batch_lanes(&mut p), 0);
    }

    #[test]
    fn near_misses_stay_per_lane() {
        // A lane missing.
        let mut p = program(&[3, 4, 5], 1, &[0, 1, 3], Op::Exp);
        assert_eq!(batch_lanes(&mut p), 0);
        assert_eq!(count(&p, Op::Exp), 3);
        // One lane: nothing to batch.
        let mut p = program(&[1, 4], 0, &[0], Op::Exp);
        assert_eq!(batch_lanes(&mut p), 0);
        // Lanes along a matrix axis of a product.
        let mut p = program(&[3, 3, 3], 1, &[0, 1, 2], Op::Matmul);
        assert_eq!(batch_lanes(&mut p), 0);
        assert_eq!(count(&p, Op::Matmul), 3);
    }
}
