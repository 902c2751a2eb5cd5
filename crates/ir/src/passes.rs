//! Whole-program passes that never change a value: dead code and common subexpressions;
//! and the analysis of what depends on no input (what the emitted module may hoist).

use crate::program::*;
use crate::Op;
use std::collections::{HashMap, HashSet};

/// Drops nodes and constants that no output depends on. Returns how many nodes went.
pub fn dead_code(p: &mut Program) -> usize {
    let mut live: HashSet<ValueId> = p.outputs.iter().copied().collect();
    let mut keep = vec![false; p.nodes.len()];
    for (i, n) in p.nodes.iter().enumerate().rev() {
        if n.outputs.iter().any(|o| live.contains(o)) {
            keep[i] = true;
            live.extend(n.inputs.iter().copied());
        }
    }
    let before = p.nodes.len();
    let mut k = keep.into_iter();
    p.nodes.retain(|_| k.next().unwrap());
    p.constants.retain(|c| live.contains(&c.value));
    before - p.nodes.len()
}

/// Makes a slice of a slice one slice of the first's input (`g[:, :, c0:c1][:, :, i]` is
/// `g[:, :, c0 + i]`): an unrolled loop over chunks and steps then takes every step's lane
/// from one array, which [`crate::batch`] batches whole. Returns how many slices changed.
pub fn compose_slices(p: &mut Program) -> usize {
    let made: HashMap<ValueId, usize> =
        p.nodes.iter().enumerate().flat_map(|(i, n)| n.outputs.iter().map(move |o| (*o, i))).collect();
    let mut composed = 0;
    for i in 0..p.nodes.len() {
        let outer = &p.nodes[i];
        let Some(&j) = outer.inputs.first().and_then(|v| made.get(v)) else { continue };
        let inner = &p.nodes[j];
        if outer.op != Op::Slice || inner.op != Op::Slice {
            continue;
        }
        let Some((args, from)) = composed_slice(inner, outer).map(|a| (a, inner.inputs[0])) else { continue };
        let node = &mut p.nodes[i];
        node.args = args;
        node.inputs[0] = from;
        composed += 1;
    }
    composed
}

/// The arguments of `outer` applied to `inner`'s input, where both are constant and step forward.
fn composed_slice(inner: &Node, outer: &Node) -> Option<Vec<Arg>> {
    let ints = |n: &Node| -> Option<[Vec<i64>; 3]> {
        let a = |i: usize| n.args.get(i).and_then(Arg::const_ints);
        Some([a(0)?, a(1)?, a(2)?])
    };
    let ([s1, _, k1], [s2, e2, k2]) = (ints(inner)?, ints(outer)?);
    if k1.iter().chain(&k2).any(|k| *k <= 0) || s1.len() != s2.len() {
        return None;
    }
    let mut start = vec![];
    let mut stop = vec![];
    let mut step = vec![];
    for d in 0..s1.len() {
        let count = (e2[d] - s2[d] + k2[d] - 1).div_euclid(k2[d]).max(0);
        let (s, k) = (s1[d] + s2[d] * k1[d], k1[d] * k2[d]);
        start.push(s);
        stop.push(if count == 0 { s } else { s + (count - 1) * k + 1 });
        step.push(k);
    }
    Some(vec![Arg::ints(&start), Arg::ints(&stop), Arg::ints(&step)])
}

fn concat_axis(p: &Program, n: &Node) -> Option<usize> {
    let rank = p.value(n.outputs[0]).shape.len() as i64;
    let a = n.args.first()?.int()?.as_const()?;
    (n.op == Op::Concatenate && rank > 0).then(|| a.rem_euclid(rank) as usize)
}

/// A concatenation of concatenations along the same axis, read nowhere else, becomes one
/// (and the merged ones go, with anything else no output needs). Returns how many merged.
pub fn flatten_concatenates(p: &mut Program) -> usize {
    let mut readers: HashMap<ValueId, usize> = HashMap::new();
    for v in p.nodes.iter().flat_map(|n| n.inputs.iter()).chain(&p.outputs) {
        *readers.entry(*v).or_default() += 1;
    }
    let made: HashMap<ValueId, usize> =
        p.nodes.iter().enumerate().flat_map(|(i, n)| n.outputs.iter().map(move |o| (*o, i))).collect();
    let mut merged = 0;
    for i in 0..p.nodes.len() {
        let Some(axis) = concat_axis(p, &p.nodes[i]) else { continue };
        let mut inputs = vec![];
        for v in p.nodes[i].inputs.clone() {
            let inner = made.get(&v).map(|j| &p.nodes[*j]);
            match inner {
                Some(c) if concat_axis(p, c) == Some(axis) && readers[&v] == 1 => {
                    inputs.extend(c.inputs.iter().copied());
                    merged += 1;
                }
                _ => inputs.push(v),
            }
        }
        p.nodes[i].inputs = inputs;
    }
    if merged > 0 {
        dead_code(p);
    }
    merged
}

/// A concatenation of consecutive lanes of one array (`Squeeze(Slice(y))`, each of extent 1
/// along the concatenation's axis) becomes that range of lanes moved into place: a slice,
/// a transpose and a reshape instead of a node per lane (a recurrence kernel's step outputs
/// stacked back into a sequence). Returns how many concatenations went.
pub fn lanes_in_place(p: &mut Program) -> usize {
    let made: HashMap<ValueId, usize> =
        p.nodes.iter().enumerate().flat_map(|(i, n)| n.outputs.iter().map(move |o| (*o, i))).collect();
    let mut nodes = Vec::with_capacity(p.nodes.len());
    let mut changed = 0;
    for i in 0..p.nodes.len() {
        let node = p.nodes[i].clone();
        match in_place(p, &made, &node) {
            Some(new) => {
                nodes.extend(new);
                changed += 1;
            }
            None => nodes.push(node),
        }
    }
    p.nodes = nodes;
    changed
}

/// The nodes that place concatenation `c`'s lanes, if they are consecutive lanes of one array.
fn in_place(p: &mut Program, made: &HashMap<ValueId, usize>, c: &Node) -> Option<Vec<Node>> {
    let axis = concat_axis(p, c)?;
    let lane = |v: &ValueId| crate::batch::lane_of(p, made, &p.nodes[*made.get(v)?]);
    let lanes: Vec<(ValueId, usize, i64)> = c.inputs.iter().map(lane).collect::<Option<_>>()?;
    let (whole, l, first) = *lanes.first()?;
    let n = lanes.len() as i64;
    let consecutive = lanes.iter().enumerate().all(|(j, x)| *x == (whole, l, first + j as i64));
    let units = c.inputs.iter().all(|v| p.value(*v).shape.get(axis) == Some(&1));
    if !consecutive || !units || n < 2 {
        return None;
    }
    let shape = p.value(whole).shape.clone();
    let (mut start, mut stop) = (vec![0; shape.len()], shape.clone());
    (start[l], stop[l]) = (first, first + n);
    let mut range = shape.clone();
    range[l] = n;
    // The whole array's axes without the lane axis, which goes just before the concatenation's.
    let at = if axis < l { axis } else { axis + 1 };
    let mut perm: Vec<i64> = (0..shape.len() as i64).filter(|a| *a != l as i64).collect();
    let put = perm.iter().position(|a| *a == at as i64).unwrap_or(perm.len());
    perm.insert(put, l as i64);
    let moved: Vec<i64> = perm.iter().map(|a| range[*a as usize]).collect();
    let dtype = p.value(whole).dtype;
    let sliced = p.push_value(Value { shape: range, dtype });
    let transposed = p.push_value(Value { shape: moved, dtype });
    let out = c.outputs[0];
    let reshape = p.value(out).shape.clone();
    let slice = vec![Arg::ints(&start), Arg::ints(&stop), Arg::ints(&vec![1; shape.len()])];
    Some(vec![
        Node { op: Op::Slice, args: slice, inputs: vec![whole], outputs: vec![sliced] },
        Node { op: Op::Transpose, args: vec![Arg::ints(&perm)], inputs: vec![sliced], outputs: vec![transposed] },
        Node { op: Op::Reshape, args: vec![Arg::ints(&reshape)], inputs: vec![transposed], outputs: vec![out] },
    ])
}

/// Merges equal constants and nodes that apply the same primitive, with the same
/// arguments, to the same inputs. Returns how many nodes and constants were merged.
pub fn common_subexpressions(p: &mut Program) -> usize {
    let mut rename: HashMap<ValueId, ValueId> = HashMap::new();
    let mut merged = 0;
    let mut seen_consts: HashMap<String, ValueId> = HashMap::new();
    p.constants.retain(|c| {
        let key = format!("{:?}|{}", p.values[c.value], serde_json::to_string(&c.data).unwrap());
        match seen_consts.get(&key) {
            Some(first) => {
                rename.insert(c.value, *first);
                merged += 1;
                false
            }
            None => {
                seen_consts.insert(key, c.value);
                true
            }
        }
    });
    let mut seen_nodes: HashMap<String, Vec<ValueId>> = HashMap::new();
    let mut nodes = Vec::with_capacity(p.nodes.len());
    for mut n in std::mem::take(&mut p.nodes) {
        for i in n.inputs.iter_mut() {
            *i = *rename.get(i).unwrap_or(i);
        }
        let types: Vec<&Value> = n.outputs.iter().map(|o| &p.values[*o]).collect();
        let key = format!("{}|{}|{:?}|{types:?}", n.op, serde_json::to_string(&n.args).unwrap(), n.inputs);
        match seen_nodes.get(&key) {
            Some(first) => {
                for (o, f) in n.outputs.iter().zip(first) {
                    rename.insert(*o, *f);
                }
                merged += 1;
            }
            None => {
                seen_nodes.insert(key, n.outputs.clone());
                nodes.push(n);
            }
        }
    }
    p.nodes = nodes;
    for o in p.outputs.iter_mut() {
        *o = *rename.get(o).unwrap_or(o);
    }
    merged
}

/// Primitives that only move or view data: hoisting these alone saves nothing.
const VIEWS: &[Op] =
    &[Op::Broadcast, Op::Reshape, Op::ExpandDims, Op::Squeeze, Op::Transpose, Op::AsType, Op::Copy, Op::StopGradient];

/// For each node: whether the emitted module may compute it once per input shape and
/// reuse it, i.e. it depends on no input array (only on constants and on input shapes)
/// and is not random. Nodes that produce an output stay in the call (callers may keep
/// and mutate what they get). `None` when nothing worth hoisting is found: only views.
pub fn hoistable(p: &Program) -> Option<Vec<bool>> {
    let mut fixed: HashSet<ValueId> = p.constants.iter().map(|c| c.value).collect();
    let outputs: HashSet<ValueId> = p.outputs.iter().copied().collect();
    let mut hoist = vec![false; p.nodes.len()];
    for (i, n) in p.nodes.iter().enumerate() {
        let independent = n.op != Op::RandomBits && n.inputs.iter().all(|v| fixed.contains(v));
        if independent && !n.outputs.iter().any(|o| outputs.contains(o)) {
            hoist[i] = true;
            fixed.extend(n.outputs.iter().copied());
        }
    }
    let work = p.nodes.iter().zip(&hoist).any(|(n, h)| *h && !VIEWS.contains(&n.op));
    work.then_some(hoist)
}

/// Runs `[start, end)` of consecutive elementwise nodes (and the views between them)
/// with at least two elementwise nodes: the islands `mx.compile` may fuse on their own.
pub fn elementwise_runs(nodes: &[&Node]) -> Vec<(usize, usize)> {
    use crate::ops::Kind;
    let elementwise = |n: &Node| matches!(n.op.kind(), Kind::Unary | Kind::Binary | Kind::Ternary);
    let fusable =
        |n: &Node| elementwise(n) || matches!(n.op, Op::Broadcast | Op::ExpandDims | Op::Reshape | Op::Squeeze);
    let mut runs = vec![];
    let mut i = 0;
    while i < nodes.len() {
        let end = (i..nodes.len()).find(|j| !fusable(nodes[*j])).unwrap_or(nodes.len());
        if nodes[i..end].iter().filter(|n| elementwise(n)).count() >= 2 {
            runs.push((i, end));
        }
        i = end.max(i + 1);
    }
    runs
}

/// Which of `nodes` follow `steps`, dims of the inputs that change from one call to the
/// next where fn runs (a KV cache's length in a decode loop): a node that reads a value
/// whose shape may follow them, or whose arguments name a dim of such an input. A compiled
/// function of the other nodes sees the same shapes at every call, so it is traced once
/// (`mx.compile` keeps one trace per input shape and searches them all at each call).
pub fn stepping(p: &Program, nodes: &[&Node], steps: &[crate::DimTerm]) -> Vec<bool> {
    let moving_inputs: HashSet<usize> = steps.iter().map(|t| t.input).collect();
    let mut moving: HashSet<ValueId> = moving_inputs.iter().map(|i| p.inputs[*i]).collect();
    nodes
        .iter()
        .map(|n| {
            let named = n.args.iter().flat_map(arg_inputs).any(|i| moving_inputs.contains(&i));
            let follows = named || n.inputs.iter().any(|v| moving.contains(v));
            if follows {
                moving.extend(n.outputs.iter().copied());
            }
            follows
        })
        .collect()
}

/// The inputs whose dims an argument names.
pub fn arg_inputs(a: &Arg) -> Vec<usize> {
    match a {
        Arg::Int(d) => d.terms.iter().map(|t| t.input).collect(),
        Arg::List(xs) => xs.iter().flat_map(arg_inputs).collect(),
        _ => vec![],
    }
}

/// Whether compiling islands differs from compiling the whole program: there is an
/// island, and something outside every island.
pub fn has_islands(p: &Program) -> bool {
    let nodes: Vec<&Node> = p.nodes.iter().collect();
    let runs = elementwise_runs(&nodes);
    let covered: usize = runs.iter().map(|(a, b)| b - a).sum();
    !runs.is_empty() && covered < nodes.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dim, Dtype, OutputKind};

    fn program() -> Program {
        // y = exp(x) / (1 + exp(x)), with a dead Negative node.
        let v = Value { shape: vec![4], dtype: Dtype::Float32 };
        let s = Value { shape: vec![], dtype: Dtype::Float32 };
        let node = |op: &str, inputs: Vec<ValueId>, out: ValueId| Node {
            op: Op::parse(op).expect("a known primitive"),
            args: vec![],
            inputs,
            outputs: vec![out],
        };
        Program {
            values: vec![v.clone(), s.clone(), s, v.clone(), v.clone(), v.clone(), v.clone(), v.clone()],
            inputs: vec![0],
            constants: vec![
                Constant { value: 1, data: ConstData::Scalar { expr: ScalarExpr::Lit { v: 1.0 } } },
                Constant { value: 2, data: ConstData::Scalar { expr: ScalarExpr::Lit { v: 1.0 } } },
            ],
            nodes: vec![
                node("Exp", vec![0], 3),
                node("Exp", vec![0], 4),
                node("Add", vec![2, 4], 5),
                node("Divide", vec![3, 5], 6),
                node("Negative", vec![0], 7),
            ],
            outputs: vec![6],
            signature: Signature::returning(OutputKind::Array),
        }
    }

    #[test]
    fn what_follows_a_step_dim_and_what_does_not() {
        // Inputs a (its axis 0 changes at every call) and b; the constants feed both.
        let mut p = program();
        p.values.push(Value { shape: vec![4], dtype: Dtype::Float32 });
        p.inputs.push(8);
        let reshape = |input, out| Node {
            op: Op::Reshape,
            args: vec![Arg::List(vec![Arg::Int(crate::Dim {
                terms: vec![crate::DimTerm { input: 0, axis: 0 }],
                num: 1,
                den: 1,
                offset: 0,
            })])],
            inputs: vec![input],
            outputs: vec![out],
        };
        p.nodes[0].inputs = vec![8]; // exp(b)
        p.nodes[4] = reshape(3, 7); // b's exp reshaped to a's length: names a's dim
        let nodes: Vec<&Node> = p.nodes.iter().collect();
        let a = [crate::DimTerm { input: 0, axis: 0 }];
        assert_eq!(stepping(&p, &nodes, &a), [false, true, true, true, true]);
        assert_eq!(stepping(&p, &nodes, &[]), [false; 5], "a near miss: no dim changes at every call");
        let b = [crate::DimTerm { input: 1, axis: 0 }];
        assert_eq!(stepping(&p, &nodes, &b), [true, false, false, true, true]);
    }

    #[test]
    fn cse_shares_exp_and_equal_constants() {
        let mut p = program();
        assert_eq!(common_subexpressions(&mut p), 2);
        assert_eq!(p.nodes.iter().filter(|n| n.op == Op::Exp).count(), 1);
        assert_eq!(p.nodes[1].inputs, vec![1, 3]);
        assert_eq!(p.constants.len(), 1);
    }

    /// Two nodes alike but for their outputs' dtype (a float32 and a uint8 `arange(n)`, whose
    /// dtype MLX records in the output alone) stay apart; alike in dtype too, they merge.
    #[test]
    fn cse_keeps_other_output_dtypes_apart() {
        let mut p = program();
        p.values[4].dtype = Dtype::Uint8;
        assert_eq!(common_subexpressions(&mut p), 1, "only the constants merge");
        assert_eq!(p.nodes.iter().filter(|n| n.op == Op::Exp).count(), 2);
        let mut p = program();
        p.values[3].dtype = Dtype::Uint8;
        p.values[4].dtype = Dtype::Uint8;
        assert_eq!(common_subexpressions(&mut p), 2);
    }

    #[test]
    fn cse_keeps_different_arguments_apart() {
        let mut p = program();
        p.nodes[1].args = vec![Arg::Bool(true)];
        assert_eq!(common_subexpressions(&mut p), 1, "only the constants merge");
        assert_eq!(p.nodes.iter().filter(|n| n.op == Op::Exp).count(), 2);
    }

    /// `x[0:8:2][1:3]` (or with `outer`'s arguments) of an input of 10.
    fn sliced_twice(outer: [Vec<i64>; 3]) -> Program {
        let value = |n: i64| Value { shape: vec![n], dtype: Dtype::Float32 };
        let slice = |a: [Vec<i64>; 3], from: ValueId, out: ValueId| Node {
            op: Op::Slice,
            args: a.iter().map(|v| Arg::ints(v)).collect(),
            inputs: vec![from],
            outputs: vec![out],
        };
        Program {
            values: vec![value(10), value(4), value(2)],
            inputs: vec![0],
            constants: vec![],
            nodes: vec![slice([vec![0], vec![8], vec![2]], 0, 1), slice(outer, 1, 2)],
            outputs: vec![2],
            signature: Signature::returning(OutputKind::Array),
        }
    }

    #[test]
    fn a_slice_of_a_slice_is_one_slice() {
        let mut p = sliced_twice([vec![1], vec![3], vec![1]]);
        assert_eq!(compose_slices(&mut p), 1);
        // Elements 1 and 2 of [0, 2, 4, 6] are 2 and 4: x[2:5:2].
        let args: Vec<Vec<i64>> = p.nodes[1].args.iter().map(|a| a.const_ints().unwrap()).collect();
        assert_eq!(args, [vec![2], vec![5], vec![2]]);
        assert_eq!(p.nodes[1].inputs, [0]);
    }

    #[test]
    fn a_slice_stepping_back_is_left_alone() {
        let mut p = sliced_twice([vec![3], vec![1], vec![-1]]);
        assert_eq!(compose_slices(&mut p), 0);
        assert_eq!(p.nodes[1].inputs, [1]);
    }

    /// `y [steps, 2, 1, 3]`, lanes `order` of it (`Squeeze(Slice(y))`), concatenated along
    /// axis 1 in groups of `group` and then again (a stack per chunk, then the chunks).
    fn stacked_lanes(steps: i64, order: &[i64], group: usize) -> Program {
        let mut p = sliced_twice([vec![0], vec![1], vec![1]]);
        p.values = vec![Value { shape: vec![steps, 2, 1, 3], dtype: Dtype::Float32 }];
        p.nodes.clear();
        let mut parts = vec![];
        for &j in order {
            let s = p.push_value(Value { shape: vec![1, 2, 1, 3], dtype: Dtype::Float32 });
            let args = vec![Arg::ints(&[j, 0, 0, 0]), Arg::ints(&[j + 1, 2, 1, 3]), Arg::ints(&[1, 1, 1, 1])];
            p.nodes.push(Node { op: Op::Slice, args, inputs: vec![0], outputs: vec![s] });
            let lane = p.push_value(Value { shape: vec![2, 1, 3], dtype: Dtype::Float32 });
            p.nodes.push(Node { op: Op::Squeeze, args: vec![Arg::ints(&[0])], inputs: vec![s], outputs: vec![lane] });
            parts.push(lane);
        }
        let concat = |p: &mut Program, inputs: Vec<ValueId>| {
            let out = p.push_value(Value { shape: vec![2, inputs.len() as i64, 3], dtype: Dtype::Float32 });
            p.nodes.push(Node {
                op: Op::Concatenate,
                args: vec![Arg::Int(Dim::constant(1))],
                inputs,
                outputs: vec![out],
            });
            out
        };
        let groups: Vec<ValueId> = parts.chunks(group).map(|g| concat(&mut p, g.to_vec())).collect();
        let whole = if groups.len() == 1 { groups[0] } else { concat(&mut p, groups) };
        p.values[whole].shape = vec![2, order.len() as i64, 3];
        p.outputs = vec![whole];
        p
    }

    #[test]
    fn stacked_consecutive_lanes_are_one_transpose() {
        let mut p = stacked_lanes(8, &[0, 1, 2, 3, 4, 5, 6, 7], 4);
        assert_eq!(flatten_concatenates(&mut p), 2);
        assert_eq!(lanes_in_place(&mut p), 1);
        dead_code(&mut p);
        let ops: Vec<Op> = p.nodes.iter().map(|n| n.op).collect();
        assert_eq!(ops, [Op::Slice, Op::Transpose, Op::Reshape]);
        assert_eq!(p.nodes[1].args[0].const_ints().unwrap(), [1, 0, 2, 3], "steps go before the unit axis");
    }

    #[test]
    fn lanes_out_of_order_or_of_a_wider_axis_stay() {
        let mut p = stacked_lanes(8, &[0, 2, 1, 3], 4);
        assert_eq!(lanes_in_place(&mut p), 0, "not consecutive");
        // Concatenated along an axis where each lane is 2 wide, the lanes interleave.
        let mut p = stacked_lanes(8, &[0, 1, 2, 3], 4);
        let last = p.nodes.len() - 1;
        p.nodes[last].args = vec![Arg::Int(Dim::constant(0))];
        assert_eq!(lanes_in_place(&mut p), 0);
        // A concatenation read elsewhere too stays apart.
        let mut p = stacked_lanes(8, &[0, 1, 2, 3, 4, 5, 6, 7], 4);
        p.outputs.push(p.nodes.iter().find(|n| n.op == Op::Concatenate).unwrap().outputs[0]);
        assert_eq!(flatten_concatenates(&mut p), 1);
    }

    #[test]
    fn dce_drops_unused_nodes_only() {
        let mut p = program();
        assert_eq!(dead_code(&mut p), 1);
        assert!(p.nodes.iter().all(|n| n.op != Op::Negative));
        assert_eq!(p.nodes.len(), 4);
    }
}
