//! Constant folding for rules: the values of an e-class that depends on no input
//! (tables built from `arange`, scalars, broadcasts), in float64 at the traced size.
//! Rules read them to recognise a table (RoPE's angles); nothing here is emitted.

use super::lang::{EGraph, Mlx};
use super::shape::split_args;
use egg::{Id, Language};
use std::collections::HashMap;
use superopt_ir::Arg;
use superopt_ir::Op;

/// Tables larger than this are not folded.
pub const MAX_ELEMENTS: usize = 1 << 20;

/// A folded array, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Table {
    /// The element at `index` (one entry per axis).
    pub fn at(&self, index: &[usize]) -> f64 {
        let flat = index.iter().zip(&self.shape).fold(0, |acc, (i, n)| acc * n + i);
        self.data[flat]
    }
}

/// The values of e-class `id`, if it depends on no input and every primitive on the
/// way is one this folder knows.
pub fn fold(g: &EGraph, id: Id) -> Option<Table> {
    Folder { g, memo: HashMap::new() }.class(g.find(id))
}

struct Folder<'a> {
    g: &'a EGraph,
    /// `None` while a class is being folded (a cycle) or when it cannot be.
    memo: HashMap<Id, Option<Table>>,
}

impl Folder<'_> {
    fn class(&mut self, id: Id) -> Option<Table> {
        if let Some(t) = self.memo.get(&id) {
            return t.clone();
        }
        self.memo.insert(id, None);
        let data = &self.g[id].data;
        let shape: Vec<usize> = data.value()?.shape.iter().map(|n| *n as usize).collect();
        if !data.constant || shape.iter().product::<usize>() > MAX_ELEMENTS {
            return None;
        }
        let nodes = self.g[id].nodes.clone();
        let t = nodes.iter().find_map(|n| self.node(n, &shape));
        self.memo.insert(id, t.clone());
        t
    }

    fn node(&mut self, node: &Mlx, shape: &[usize]) -> Option<Table> {
        let g = self.g;
        match node {
            Mlx::Const(i) => {
                let v = *g.analysis.tables.scalars.get(i)?;
                shape.is_empty().then(|| Table { shape: vec![], data: vec![v] })
            }
            Mlx::Op(op, children) => {
                let (args, inputs) = split_args(g, children);
                let ins = inputs.iter().map(|c| self.class(g.find(*c))).collect::<Option<Vec<Table>>>()?;
                apply(*op, args, &ins, shape, &input_shapes(g))
            }
            _ => None,
        }
    }
}

fn input_shapes(g: &EGraph) -> Vec<Vec<i64>> {
    g.analysis.tables.inputs.iter().map(|v| v.shape.clone()).collect()
}

fn number(a: &Arg, shapes: &[Vec<i64>]) -> Option<f64> {
    match a {
        Arg::Float(v) => Some(*v),
        Arg::Int(d) => d.eval(shapes).map(|v| v as f64),
        _ => None,
    }
}

/// One primitive on folded inputs; `shape` is the traced output shape.
fn apply(op: Op, args: &[Arg], ins: &[Table], shape: &[usize], shapes: &[Vec<i64>]) -> Option<Table> {
    let unary =
        |f: fn(f64) -> f64| Some(Table { shape: shape.to_vec(), data: ins[0].data.iter().map(|v| f(*v)).collect() });
    let binary = |f: fn(f64, f64) -> f64| {
        let (a, b) = (broadcast(&ins[0], shape), broadcast(&ins[1], shape));
        Some(Table { shape: shape.to_vec(), data: a.data.iter().zip(&b.data).map(|(x, y)| f(*x, *y)).collect() })
    };
    match op {
        Op::Arange if !super::shape::counts_exactly(args) => None,
        Op::Arange => {
            let (start, step) = (number(args.first()?, shapes)?, number(args.get(2)?, shapes)?);
            Some(Table { shape: shape.to_vec(), data: (0..shape[0]).map(|i| start + step * i as f64).collect() })
        }
        Op::Broadcast => Some(broadcast(&ins[0], shape)),
        Op::Reshape | Op::ExpandDims | Op::Squeeze | Op::Copy | Op::StopGradient | Op::Full => {
            Some(Table { shape: shape.to_vec(), data: ins[0].data.clone() })
        }
        Op::AsType if matches!(args.first(), Some(Arg::Dtype(d)) if d.is_float()) => {
            Some(Table { shape: shape.to_vec(), data: ins[0].data.clone() })
        }
        Op::Negative => unary(|x| -x),
        Op::Exp => unary(f64::exp),
        // MLX's Log carries its base: 0 two, 1 ten, 2 e.
        Op::Log => match args.first().and_then(Arg::int).and_then(|d| d.as_const()) {
            Some(0) => unary(f64::log2),
            Some(1) => unary(f64::log10),
            _ => unary(f64::ln),
        },
        Op::Sin => unary(f64::sin),
        Op::Cos => unary(f64::cos),
        Op::Square => unary(|x| x * x),
        Op::Sqrt => match args.first() {
            Some(Arg::Bool(true)) => unary(|x| 1.0 / x.sqrt()),
            _ => unary(f64::sqrt),
        },
        Op::Add => binary(|x, y| x + y),
        Op::Subtract => binary(|x, y| x - y),
        Op::Multiply => binary(|x, y| x * y),
        Op::Divide => binary(|x, y| x / y),
        Op::Power => binary(f64::powf),
        Op::Maximum => binary(f64::max),
        Op::Equal => binary(|x, y| (x == y) as u8 as f64),
        Op::NotEqual => binary(|x, y| (x != y) as u8 as f64),
        Op::Greater => binary(|x, y| (x > y) as u8 as f64),
        Op::GreaterEqual => binary(|x, y| (x >= y) as u8 as f64),
        Op::Less => binary(|x, y| (x < y) as u8 as f64),
        Op::LessEqual => binary(|x, y| (x <= y) as u8 as f64),
        Op::Select => {
            let (c, a, b) = (broadcast(&ins[0], shape), broadcast(&ins[1], shape), broadcast(&ins[2], shape));
            Some(Table {
                shape: shape.to_vec(),
                data: (0..c.data.len()).map(|k| if c.data[k] != 0.0 { a.data[k] } else { b.data[k] }).collect(),
            })
        }
        Op::Minimum => binary(f64::min),
        Op::Concatenate => concatenate(ins, args.first().and_then(Arg::int)?.as_const()?, shape),
        _ => None,
    }
}

/// `ins` joined along `axis` (negative: from the end) into `shape`.
fn concatenate(ins: &[Table], axis: i64, shape: &[usize]) -> Option<Table> {
    let axis = super::shape::axis_index(axis, shape.len())?;
    let (outer, inner): (usize, usize) = (shape[..axis].iter().product(), shape[axis + 1..].iter().product());
    let mut data = Vec::with_capacity(shape.iter().product());
    for o in 0..outer {
        for t in ins {
            let chunk = t.shape.get(axis)? * inner;
            data.extend_from_slice(t.data.get(o * chunk..(o + 1) * chunk)?);
        }
    }
    (data.len() == shape.iter().product::<usize>()).then(|| Table { shape: shape.to_vec(), data })
}

/// `t` broadcast to `shape` (numpy rules: trailing axes aligned, size-1 axes repeated).
fn broadcast(t: &Table, shape: &[usize]) -> Table {
    if t.shape == shape {
        return t.clone();
    }
    let lead = shape.len() - t.shape.len().min(shape.len());
    let n: usize = shape.iter().product();
    let mut data = Vec::with_capacity(n);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..n {
        let src: Vec<usize> =
            t.shape.iter().enumerate().map(|(a, m)| if *m == 1 { 0 } else { index[lead + a] }).collect();
        data.push(t.at(&src));
        for a in (0..shape.len()).rev() {
            index[a] += 1;
            if index[a] < shape[a] {
                break;
            }
            index[a] = 0;
        }
    }
    Table { shape: shape.to_vec(), data }
}

/// Whether `id`'s class holds a node `op(...)`, and its array inputs.
pub fn find_op(g: &EGraph, id: Id, op: Op) -> Option<Vec<Id>> {
    g[g.find(id)]
        .nodes
        .iter()
        .find(|n| n.op() == Some(op))
        .map(|n| split_args(g, n.children()).1.iter().map(|c| g.find(*c)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{ints, TestGraph};
    use superopt_ir::{Dim, Dtype};

    #[test]
    fn folds_a_rope_angle_table() {
        let (mut t, _) = TestGraph::new(&[&[1, 2, 4, 8]]);
        let pos = t.op(Op::Arange, &[Arg::Float(0.0), Arg::Int(Dim::constant(4)), Arg::Float(1.0)], &[]);
        t.set_value(pos, &[4], Dtype::Float32);
        let i = t.op(Op::Arange, &[Arg::Float(0.0), Arg::Int(Dim::constant(4)), Arg::Float(1.0)], &[]);
        t.set_value(i, &[4], Dtype::Float32);
        let base = t.scalar(100.0, &[4]);
        let half = t.scalar(4.0, &[4]);
        let e = t.op(Op::Divide, &[], &[i, half]);
        let inv = t.op(Op::Power, &[], &[base, e]);
        let col = t.op(Op::ExpandDims, &[ints(&[1])], &[pos]);
        let row = t.op(Op::ExpandDims, &[ints(&[0])], &[inv]);
        let theta = t.op(Op::Divide, &[], &[col, row]);
        let table = fold(&t.g, theta).expect("folds");
        assert_eq!(table.shape, vec![4, 4]);
        assert_eq!(table.at(&[3, 2]), 3.0 / 100f64.powf(0.5));
    }

    /// Import gives `Arange` its dtype as a fourth argument, so a float32 and a uint8
    /// `arange(4)` are two e-classes of their own dtypes (a merged one wraps past 255); two
    /// of one dtype are one.
    #[test]
    fn aranges_of_other_dtypes_stay_apart() {
        let (mut t, _) = TestGraph::new(&[&[4]]);
        let range = |d: Dtype| [Arg::Float(0.0), Arg::Int(Dim::constant(4)), Arg::Float(1.0), Arg::Dtype(d)];
        let f = t.op(Op::Arange, &range(Dtype::Float32), &[]);
        let u = t.op(Op::Arange, &range(Dtype::Uint8), &[]);
        assert_ne!(t.g.find(f), t.g.find(u));
        assert_eq!(t.g[u].data.values[0].dtype, Dtype::Uint8);
        assert_eq!(t.g[f].data.values[0].dtype, Dtype::Float32);
        let again = t.op(Op::Arange, &range(Dtype::Uint8), &[]);
        assert_eq!(t.g.find(again), t.g.find(u));
    }

    #[test]
    fn an_input_does_not_fold() {
        let (mut t, x) = TestGraph::new(&[&[4]]);
        let e = t.op(Op::Exp, &[], &[x[0]]);
        assert!(fold(&t.g, e).is_none());
    }
}
