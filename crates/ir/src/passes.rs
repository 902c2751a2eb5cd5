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
        let key = format!("{}|{}|{:?}", n.op, serde_json::to_string(&n.args).unwrap(), n.inputs);
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
    use crate::{Dtype, OutputKind};

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
            signature: Signature { params: vec![], output_kind: OutputKind::Array, updated: vec![] },
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

    #[test]
    fn cse_keeps_different_arguments_apart() {
        let mut p = program();
        p.nodes[1].args = vec![Arg::Bool(true)];
        assert_eq!(common_subexpressions(&mut p), 1, "only the constants merge");
        assert_eq!(p.nodes.iter().filter(|n| n.op == Op::Exp).count(), 2);
    }

    #[test]
    fn dce_drops_unused_nodes_only() {
        let mut p = program();
        assert_eq!(dead_code(&mut p), 1);
        assert!(p.nodes.iter().all(|n| n.op != Op::Negative));
        assert_eq!(p.nodes.len(), 4);
    }
}
