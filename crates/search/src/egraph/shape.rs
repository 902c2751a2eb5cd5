//! Shape, dtype and symbolic-dim inference for e-nodes, run on every node the
//! e-graph receives. Traced nodes get their traced values on top; nodes that
//! rules make rely on this alone, so a primitive it does not know stays unknown
//! and no rule will touch it.

use super::lang::{Data, EGraph, Mlx};
use egg::Id;
use superopt_ir::{ops, Arg, Dim, Dtype, Op, Value};

type Shape = (Vec<i64>, Option<Vec<Dim>>);

pub fn infer(egraph: &EGraph, enode: &Mlx) -> Data {
    let t = &egraph.analysis.tables;
    match enode {
        Mlx::Input(i) => {
            let v = t.inputs[*i as usize].clone();
            let dims = (0..v.shape.len()).map(|a| t.input_dims(*i as usize, a)).collect();
            Data { values: vec![v], dims: Some(dims), ..Data::default() }
        }
        Mlx::Const(i) => {
            let v = t.consts[*i as usize].value.clone();
            let dims = v.shape.iter().map(|n| Dim::constant(*n)).collect();
            Data { values: vec![v], dims: Some(dims), constant: true, scalar: t.scalars.get(i).copied(), args: None }
        }
        Mlx::Args(i) => Data { args: Some(*i), ..Data::default() },
        Mlx::Op(op, children) => op_data(egraph, *op, children),
        Mlx::Get(children) => get_data(egraph, children),
    }
}

/// One output of a node with several.
fn get_data(egraph: &EGraph, children: &[Id]) -> Data {
    let (args, inputs) = split_args(egraph, children);
    let ins: Vec<&Data> = inputs.iter().map(|i| &egraph[*i].data).collect();
    let mut data = Data { constant: ins.iter().all(|d| d.constant), ..Data::default() };
    let k = args.first().and_then(Arg::int).and_then(Dim::as_const).unwrap_or(-1);
    if let Some(v) = ins.first().and_then(|d| d.values.get(k as usize)) {
        data.values = vec![v.clone()];
    }
    data
}

fn op_data(egraph: &EGraph, op: Op, children: &[Id]) -> Data {
    let (args, inputs) = split_args(egraph, children);
    let ins: Vec<&Data> = inputs.iter().map(|i| &egraph[*i].data).collect();
    let constant = ins.iter().all(|d| d.constant);
    let mut data = Data { constant, ..Data::default() };
    if op == Op::Arange {
        if let Some((shape, dims)) = arange(egraph, args) {
            // Import adds the dtype as a fourth argument; where a rule built one without,
            // the trace's value replaces this one.
            let dtype = match args.get(3) {
                Some(Arg::Dtype(d)) => *d,
                _ => Dtype::Float32,
            };
            data.values = vec![Value { shape, dtype }];
            data.dims = dims;
        }
        return data;
    }
    let Some(vals) = ins.iter().map(|d| d.value()).collect::<Option<Vec<&Value>>>() else { return data };
    let shapes: Vec<Shape> = ins.iter().zip(&vals).map(|(d, v)| (v.shape.clone(), d.dims.clone())).collect();
    let dtype = vals.first().map(|v| v.dtype);
    let out = match (op, op.kind()) {
        (Op::AsType, _) => args.first().and_then(|a| match a {
            Arg::Dtype(d) => Some((shapes[0].clone(), *d)),
            _ => None,
        }),
        (_, ops::Kind::Unary) => Some((shapes[0].clone(), dtype.unwrap())),
        (
            Op::Equal
            | Op::NotEqual
            | Op::Greater
            | Op::GreaterEqual
            | Op::Less
            | Op::LessEqual
            | Op::LogicalAnd
            | Op::LogicalOr,
            _,
        ) => broadcast(&shapes).map(|s| (s, Dtype::Bool)),
        (_, ops::Kind::Binary) => {
            promote(vals[0].dtype, vals[1].dtype).and_then(|d| broadcast(&shapes).map(|s| (s, d)))
        }
        (Op::Select, _) => broadcast(&shapes).map(|s| (s, vals[1].dtype)),
        (Op::Copy | Op::Softmax | Op::RMSNorm | Op::LayerNorm | Op::RoPE, _) => {
            Some((shapes[0].clone(), dtype.unwrap()))
        }
        (Op::Matmul, _) => matmul(&shapes).map(|s| (s, dtype.unwrap())),
        (Op::ScaledDotProductAttention, _) => attention(&shapes).map(|s| (s, dtype.unwrap())),
        (Op::Transpose, _) => transpose(&shapes[0], args).map(|s| (s, dtype.unwrap())),
        (Op::Reshape | Op::Broadcast, _) => from_args(egraph, &shapes[0], args).map(|s| (s, dtype.unwrap())),
        (Op::Flatten, _) => flatten(&shapes[0], args).map(|s| (s, dtype.unwrap())),
        (Op::Unflatten, _) => unflatten(egraph, &shapes[0], args).map(|s| (s, dtype.unwrap())),
        (Op::Reduce, _) => reduce(&shapes[0], args).map(|s| (s, dtype.unwrap())),
        // MLX's LogSumExp reduces the last axis and keeps it.
        (Op::LogSumExp, _) => shapes[0].0.len().checked_sub(1).and_then(|last| {
            reduce(&shapes[0], &[Arg::Bool(true), Arg::ints(&[last as i64])]).map(|s| (s, dtype.unwrap()))
        }),
        (Op::ExpandDims, _) => expand_dims(&shapes[0], args).map(|s| (s, dtype.unwrap())),
        (Op::Concatenate, _) if vals.iter().all(|v| Some(v.dtype) == dtype) => {
            concatenate(&shapes, args).map(|s| (s, dtype.unwrap()))
        }
        _ => None,
    };
    if let Some(((shape, dims), dtype)) = out {
        data.values = vec![Value { shape, dtype }];
        data.dims = dims;
    }
    // What keeps every element's value (`mx.ones` traces as `Full` of a broadcast 1.0).
    if matches!(op, Op::Broadcast | Op::Reshape | Op::ExpandDims | Op::Squeeze | Op::Copy | Op::StopGradient | Op::Full)
    {
        data.scalar = ins[0].scalar;
    }
    data
}

/// The `Args` leaf (if the first child is one) and the array inputs.
pub fn split_args<'a>(egraph: &'a EGraph, children: &'a [Id]) -> (&'a [Arg], &'a [Id]) {
    match children.first().and_then(|c| egraph[*c].data.args) {
        Some(i) => (&egraph.analysis.tables.args[i as usize], &children[1..]),
        None => (&[], children),
    }
}

fn promote(a: Dtype, b: Dtype) -> Option<Dtype> {
    match (a == b, a.is_float(), b.is_float()) {
        (true, _, _) => Some(a),
        (false, true, false) => Some(a),
        (false, false, true) => Some(b),
        _ => None,
    }
}

/// NumPy broadcasting of concrete shapes, and of symbolic dims where all are known.
fn broadcast(shapes: &[Shape]) -> Option<Shape> {
    let rank = shapes.iter().map(|s| s.0.len()).max()?;
    let mut out = vec![1i64; rank];
    let mut dims: Option<Vec<Dim>> = Some(vec![Dim::constant(1); rank]);
    for (s, d) in shapes {
        let off = rank - s.len();
        for (k, n) in s.iter().enumerate() {
            let o = &mut out[off + k];
            if *o != 1 && *n != 1 && *o != *n {
                return None;
            }
            if *n != 1 || *o == 1 {
                *o = (*o).max(*n);
                match (&mut dims, d) {
                    (Some(ds), Some(d)) if *n != 1 => ds[off + k] = d[k].clone(),
                    (Some(_), None) if *n != 1 => dims = None,
                    _ => {}
                }
            }
        }
    }
    Some((out, dims))
}

fn matmul(shapes: &[Shape]) -> Option<Shape> {
    let [(a, ad), (b, bd)] = shapes else { return None };
    if a.len() < 2 || b.len() < 2 || a[a.len() - 1] != b[b.len() - 2] {
        return None;
    }
    let batch =
        |s: &Vec<i64>, d: &Option<Vec<Dim>>| (s[..s.len() - 2].to_vec(), d.as_ref().map(|d| d[..d.len() - 2].to_vec()));
    let (mut shape, mut dims) = broadcast(&[batch(a, ad), batch(b, bd)])?;
    shape.extend([a[a.len() - 2], b[b.len() - 1]]);
    if let (Some(ds), Some(ad), Some(bd)) = (dims.as_mut(), ad, bd) {
        ds.extend([ad[ad.len() - 2].clone(), bd[bd.len() - 1].clone()]);
    } else {
        dims = None;
    }
    Some((shape, dims))
}

fn attention(shapes: &[Shape]) -> Option<Shape> {
    let (q, qd) = shapes.first()?;
    let (v, vd) = shapes.get(2)?;
    let mut shape = q.clone();
    *shape.last_mut()? = *v.last()?;
    let dims = match (qd, vd) {
        (Some(q), Some(v)) => Some([&q[..q.len() - 1], &v[v.len() - 1..]].concat()),
        _ => None,
    };
    Some((shape, dims))
}

fn ints(args: &[Arg], i: usize) -> Option<Vec<&Dim>> {
    args.get(i)?.list()?.iter().map(Arg::int).collect()
}

fn const_ints(args: &[Arg], i: usize) -> Option<Vec<i64>> {
    args.get(i)?.const_ints()
}

fn transpose((s, d): &Shape, args: &[Arg]) -> Option<Shape> {
    let perm = const_ints(args, 0)?;
    if perm.len() != s.len() {
        return None;
    }
    let shape = perm.iter().map(|p| s.get(*p as usize).copied()).collect::<Option<Vec<_>>>()?;
    let dims = d.as_ref().map(|d| perm.iter().map(|p| d[*p as usize].clone()).collect());
    Some((shape, dims))
}

/// `Reshape` and `Broadcast`: the shape is the argument (one `-1` allowed for reshape: its
/// dim is the input's over the others', where that is a product).
fn from_args(egraph: &EGraph, (s, in_dims): &Shape, args: &[Arg]) -> Option<Shape> {
    resolved(egraph, &ints(args, 0)?, s.iter().product(), in_dims.as_deref())
}

/// The shape `want` of `total` elements whose dims multiply to `in_dims`: its `-1` (one at
/// most) is what the others leave, and its dim `in_dims` over theirs where that is a product.
fn resolved(egraph: &EGraph, want: &[&Dim], total: i64, in_dims: Option<&[Dim]>) -> Option<Shape> {
    let t = &egraph.analysis.tables;
    let reference = t.reference_shapes();
    let mut shape = want.iter().map(|d| d.eval(&reference)).collect::<Option<Vec<i64>>>()?;
    let known: i64 = shape.iter().filter(|n| **n >= 0).product();
    if let Some(k) = shape.iter().position(|n| *n < 0) {
        if known == 0 || total % known != 0 {
            return None;
        }
        shape[k] = total / known;
    }
    let inferred = |k: usize| {
        let others: Vec<Dim> = want.iter().enumerate().filter(|(i, _)| *i != k).map(|(_, d)| (*d).clone()).collect();
        let d = Dim::quotient(in_dims?, &others)?;
        (d.eval(&reference) == Some(shape[k])).then_some(d)
    };
    let dims: Option<Vec<Dim>> = match want.iter().position(|d| d.as_const().is_some_and(|n| n < 0)) {
        Some(k) => (0..want.len()).map(|i| if i == k { inferred(k) } else { Some(want[i].clone()) }).collect(),
        None => Some(want.iter().map(|d| (*d).clone()).collect()),
    };
    Some((shape, dims.map(|ds| ds.iter().map(|d| t.canonical(d)).collect())))
}

/// An axis argument, counted from the front, if it is one of `rank`'s axes.
fn axis_arg(args: &[Arg], i: usize, rank: usize) -> Option<usize> {
    axis_index(args.get(i)?.int()?.as_const()?, rank)
}

/// `Flatten(start, end)`: axes `start..=end` merged into one (their dims' product).
fn flatten((s, d): &Shape, args: &[Arg]) -> Option<Shape> {
    let (a, b) = (axis_arg(args, 0, s.len())?, axis_arg(args, 1, s.len())?);
    if a > b {
        return None;
    }
    let shape = [&s[..a], &[s[a..=b].iter().product()][..], &s[b + 1..]].concat();
    let dims = d.as_ref().and_then(|d| Some([&d[..a], &[Dim::quotient(&d[a..=b], &[])?][..], &d[b + 1..]].concat()));
    Some((shape, dims))
}

/// `Unflatten(axis, shape)`: `axis` split into `shape` (one `-1` allowed).
fn unflatten(egraph: &EGraph, (s, d): &Shape, args: &[Arg]) -> Option<Shape> {
    let a = axis_arg(args, 0, s.len())?;
    let (parts, part_dims) = resolved(egraph, &ints(args, 1)?, s[a], d.as_ref().map(|d| &d[a..=a]))?;
    let shape = [&s[..a], &parts[..], &s[a + 1..]].concat();
    let dims = d.as_ref().zip(part_dims).map(|(d, p)| [&d[..a], &p[..], &d[a + 1..]].concat());
    Some((shape, dims))
}

/// An `Arange` argument as a dim: an integer, or a float with no fraction.
fn arange_dim(a: &Arg) -> Option<Dim> {
    match a {
        Arg::Float(f) if f.fract() == 0.0 => Some(Dim::constant(*f as i64)),
        Arg::Int(d) => Some(d.clone()),
        _ => None,
    }
}

/// Whether an `Arange` of these arguments holds every integer it counts exactly at any
/// length a sequence has: its dtype (import's fourth argument) is float32 or an integer of
/// 32 bits or more, or unknown (built by a rule). A uint8 one wraps past 255 and a bfloat16
/// one rounds past 256, so the traces' lengths would prove nothing about others.
pub fn counts_exactly(args: &[Arg]) -> bool {
    match args.get(3) {
        Some(Arg::Dtype(d)) => {
            matches!(d, Dtype::Float32 | Dtype::Float64 | Dtype::Int32 | Dtype::Int64 | Dtype::Uint32 | Dtype::Uint64)
        }
        _ => true,
    }
}

/// Whether `Arange` arguments start at 0 with step 1.
pub fn is_iota(args: &[Arg]) -> bool {
    let at = |i: usize| args.get(i).and_then(arange_dim).and_then(|d| d.as_const());
    at(0) == Some(0) && at(2) == Some(1)
}

/// `arange(0, stop, 1)`: `[stop]`, with stop's dim (symbolic when it follows an input's shape).
fn arange(egraph: &EGraph, args: &[Arg]) -> Option<Shape> {
    let t = &egraph.analysis.tables;
    let reference: Vec<Vec<i64>> = t.inputs.iter().map(|v| v.shape.clone()).collect();
    let stop = arange_dim(args.get(1)?)?;
    if !is_iota(args) {
        return None;
    }
    let n = stop.eval(&reference).filter(|n| *n >= 0)?;
    Some((vec![n], Some(vec![t.canonical(&stop)])))
}

fn reduce((s, d): &Shape, args: &[Arg]) -> Option<Shape> {
    let axes = const_ints(args, 1)?;
    let mut shape = s.clone();
    let mut dims = d.clone();
    for a in axes {
        *shape.get_mut(a as usize)? = 1;
        if let Some(ds) = dims.as_mut() {
            ds[a as usize] = Dim::constant(1);
        }
    }
    Some((shape, dims))
}

/// Inputs joined along `args[0]`; along it the dims add up (symbolic only where every input
/// has the same dim there, undivided: `n` times it).
fn concatenate(shapes: &[Shape], args: &[Arg]) -> Option<Shape> {
    let (first, _) = shapes.first()?;
    let axis = axis_index(args.first()?.int()?.as_const()?, first.len())?;
    let same_elsewhere = |s: &[i64]| s.len() == first.len() && (0..s.len()).all(|a| a == axis || s[a] == first[a]);
    if !shapes.iter().all(|(s, _)| same_elsewhere(s)) {
        return None;
    }
    let mut shape = first.clone();
    shape[axis] = shapes.iter().map(|(s, _)| s[axis]).sum();
    let dims = shapes.iter().map(|(_, d)| d.clone()).collect::<Option<Vec<Vec<Dim>>>>().and_then(|ds| {
        let along: Vec<&Dim> = ds.iter().map(|d| &d[axis]).collect();
        let joined = if along.iter().all(|d| d.as_const().is_some()) {
            Dim::constant(along.iter().filter_map(|d| d.as_const()).sum())
        } else if along.iter().all(|d| *d == along[0]) && along[0].offset == 0 && along[0].den == 1 {
            Dim { num: along[0].num * along.len() as i64, ..along[0].clone() }
        } else {
            return None;
        };
        let mut dims = ds[0].clone();
        dims[axis] = joined;
        Some(dims)
    });
    Some((shape, dims))
}

/// `axis` of an array of `rank` axes as an index (negative: from the end).
pub fn axis_index(axis: i64, rank: usize) -> Option<usize> {
    usize::try_from(if axis < 0 { axis + rank as i64 } else { axis }).ok().filter(|a| *a < rank)
}

fn expand_dims((s, d): &Shape, args: &[Arg]) -> Option<Shape> {
    let mut axes = const_ints(args, 0)?;
    axes.sort();
    let mut shape = s.clone();
    let mut dims = d.clone();
    for a in axes {
        let a = a as usize;
        if a > shape.len() {
            return None;
        }
        shape.insert(a, 1);
        if let Some(ds) = dims.as_mut() {
            ds.insert(a, Dim::constant(1));
        }
    }
    Some((shape, dims))
}
