//! The interpreter: runs an IR program on tensors of field elements.
//!
//! Input-independent integer work (arange, index arithmetic, masks from
//! comparisons) runs on plain numbers; anything touched by an input runs in the
//! field. Primitives without an exact field meaning (sqrt, max, erf...) become
//! uninterpreted functions, applied alike to both programs, and are counted.

use super::arith::{mix, rational, Elem};
use superopt_ir::{Arg, ConstData, Dim, Dtype, Node, Op, Program, ReduceKind, ScalarExpr};

#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// Exact plain numbers: input-independent values.
    Num(Vec<f64>),
    Field(Vec<Elem>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub dtype: Dtype,
    pub data: Data,
}

/// Why a program cannot be run in the field.
pub type Unfit = String;

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

fn unravel(mut i: usize, shape: &[usize], out: &mut [usize]) {
    for d in (0..shape.len()).rev() {
        out[d] = i.checked_rem(shape[d]).unwrap_or(0);
        i = i.checked_div(shape[d]).unwrap_or(0);
    }
}

/// The element type's rounding, for mapping float constants to rationals.
fn rel(d: Dtype) -> f64 {
    match d {
        Dtype::Float16 => 4.9e-4,
        Dtype::Bfloat16 => 3.9e-3,
        Dtype::Float32 => 6e-8,
        _ => 0.0,
    }
}

pub fn to_field(v: f64, dtype: Dtype) -> Result<Elem, Unfit> {
    if v == f64::NEG_INFINITY {
        return Ok(Elem::NegInf);
    }
    let (n, d) = rational(v, rel(dtype)).ok_or_else(|| format!("the constant {v} has no field value"))?;
    Ok(Elem::ratio(n, d))
}

impl Tensor {
    pub fn field(&self) -> Result<Vec<Elem>, Unfit> {
        match &self.data {
            Data::Field(v) => Ok(v.clone()),
            Data::Num(v) => v.iter().map(|x| to_field(*x, self.dtype)).collect(),
        }
    }

    fn with(&self, shape: Vec<usize>, data: Data) -> Tensor {
        Tensor { shape, dtype: self.dtype, data }
    }

    /// out[i] = self[f(out index)] for an output of `shape`.
    pub(super) fn remap(&self, shape: Vec<usize>, f: impl Fn(&[usize]) -> usize) -> Tensor {
        let mut idx = vec![0; shape.len()];
        let n = numel(&shape);
        let pick = |i: usize, idx: &mut Vec<usize>| {
            unravel(i, &shape, idx);
            f(idx)
        };
        let data = match &self.data {
            Data::Num(v) => Data::Num((0..n).map(|i| v[pick(i, &mut idx)]).collect()),
            Data::Field(v) => Data::Field((0..n).map(|i| v[pick(i, &mut idx)]).collect()),
        };
        Tensor { shape, dtype: self.dtype, data }
    }

    pub(super) fn broadcast_to(&self, shape: &[usize]) -> Tensor {
        let off = shape.len().saturating_sub(self.shape.len());
        let st = strides(&self.shape);
        let src = self.shape.clone();
        self.remap(shape.to_vec(), move |o| {
            (0..src.len()).map(|d| if src[d] == 1 { 0 } else { o[d + off] * st[d] }).sum()
        })
    }
}

fn broadcast_shape(a: &[usize], b: &[usize]) -> Vec<usize> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let x = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
            let y = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
            x.max(y)
        })
        .collect()
}

/// A tensor of random field elements (floats) or small integers, seeded by `key`.
pub fn random_tensor(shape: &[i64], dtype: Dtype, key: &str) -> Tensor {
    let mut state = key.bytes().fold(0x5EEDu64, |h, b| mix(h ^ b as u64));
    let mut next = || {
        state = mix(state);
        state
    };
    let shape: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
    let n = numel(&shape);
    let data = if dtype.is_float() {
        // One random integer, reduced mod P and mod Q: a single value in both.
        Data::Field((0..n).map(|_| next() % super::arith::Q).map(|v| Elem::from_u64_pair(v, v)).collect())
    } else if dtype == Dtype::Bool {
        Data::Num((0..n).map(|_| (next() % 2) as f64).collect())
    } else {
        Data::Num((0..n).map(|_| (next() % 16) as f64).collect())
    };
    Tensor { shape, dtype, data }
}

/// The interpreter's state: how many uninterpreted applications it made.
#[derive(Default)]
pub struct Interp {
    pub uninterpreted: Vec<String>,
}

fn tag(name: &str, args: &[Arg]) -> u64 {
    let text = format!("{name}{args:?}");
    text.bytes().fold(0u64, |h, b| mix(h ^ b as u64))
}

impl Interp {
    /// Counts exp as uninterpreted where some exponent has no known residue (`exp`'s
    /// fallback keeps exp(-x) = 1/exp(x) but not exp(a + b) = exp(a) exp(b)): a
    /// disagreement is then not conclusive.
    fn exp_used(&mut self, f: &[Elem]) {
        if !f.iter().all(|e| e.exp_known()) {
            self.uf_used("Exp");
        }
    }

    pub(super) fn uf_used(&mut self, op: &str) {
        if !self.uninterpreted.iter().any(|u| u == op) {
            self.uninterpreted.push(op.to_string());
        }
    }

    /// Runs `p` on `inputs`; `dims` evaluates the program's symbolic integers.
    pub fn run(&mut self, p: &Program, inputs: &[Tensor]) -> Result<Vec<Tensor>, Unfit> {
        let shapes: Vec<Vec<i64>> = inputs.iter().map(|t| t.shape.iter().map(|d| *d as i64).collect()).collect();
        let mut env: Vec<Option<Tensor>> = vec![None; p.values.len()];
        for (t, id) in inputs.iter().zip(&p.inputs) {
            env[*id] = Some(t.clone());
        }
        for c in &p.constants {
            let v = p.value(c.value);
            let val = match &c.data {
                ConstData::Scalar { expr } => scalar(expr, &shapes, v.dtype)?,
                ConstData::Tensor { key } => {
                    // Weights are random too, drawn from their content key: equal on both sides,
                    // so agreement holds for any weights.
                    env[c.value] = Some(random_tensor(&v.shape, v.dtype, key));
                    continue;
                }
            };
            env[c.value] = Some(Tensor { shape: vec![], dtype: v.dtype, data: Data::Num(vec![val]) });
        }
        for n in &p.nodes {
            let ins: Vec<&Tensor> = n.inputs.iter().map(|i| env[*i].as_ref().expect("topological order")).collect();
            let outs = self.node(n, &ins, p, &shapes)?;
            for (o, t) in n.outputs.iter().zip(outs) {
                env[*o] = Some(t);
            }
        }
        Ok(p.outputs.iter().map(|o| env[*o].clone().expect("outputs are defined")).collect())
    }

    fn node(&mut self, n: &Node, ins: &[&Tensor], p: &Program, shapes: &[Vec<i64>]) -> Result<Vec<Tensor>, Unfit> {
        if ins.iter().any(|t| t.shape.len() > 8) {
            return Err("rank above 8".into());
        }
        if n.op == superopt_kernel::Call::OP {
            return self.kernel(n, ins, shapes);
        }
        self.apply(n, ins, p.value(n.outputs[0]).dtype, shapes)
    }

    /// Node `n` on `ins`, its (first) output of dtype `out_dtype`.
    pub(super) fn apply(
        &mut self,
        n: &Node,
        ins: &[&Tensor],
        out_dtype: Dtype,
        shapes: &[Vec<i64>],
    ) -> Result<Vec<Tensor>, Unfit> {
        let int = |i: usize| -> Result<i64, Unfit> { arg_int(n, i, shapes) };
        let ints = |i: usize| -> Result<Vec<i64>, Unfit> { arg_ints(n, i, shapes) };
        let one = |t: Tensor| Ok(vec![t]);
        match n.op {
            Op::Add | Op::Subtract | Op::Multiply | Op::Divide => one(self.binary(n, ins[0], ins[1], out_dtype)?),
            Op::Maximum
            | Op::Minimum
            | Op::Equal
            | Op::NotEqual
            | Op::Greater
            | Op::GreaterEqual
            | Op::Less
            | Op::LessEqual
            | Op::LogicalAnd
            | Op::LogicalOr
            | Op::Remainder
            | Op::FloorDivide
            | Op::Power
            | Op::LogAddExp
            | Op::ArcTan2
            | Op::BitwiseBinary => one(self.binary(n, ins[0], ins[1], out_dtype)?),
            Op::Negative | Op::Square | Op::Exp | Op::Sigmoid | Op::Tanh | Op::Copy | Op::StopGradient | Op::Full => {
                one(self.unary(n, ins[0])?)
            }
            Op::AsType => one(self.astype(n, ins[0], out_dtype)?),
            Op::Abs
            | Op::Sqrt
            | Op::Log
            | Op::Log1p
            | Op::Expm1
            | Op::Sin
            | Op::Cos
            | Op::Tan
            | Op::Erf
            | Op::ErfInv
            | Op::Sign
            | Op::Floor
            | Op::Ceil
            | Op::Round
            | Op::LogicalNot
            | Op::Sinh
            | Op::Cosh
            | Op::ArcSin
            | Op::ArcCos
            | Op::ArcTan
            | Op::ArcSinh
            | Op::ArcCosh
            | Op::ArcTanh => one(self.unary(n, ins[0])?),
            Op::Select => one(self.select(n, ins)?),
            Op::Broadcast => one(ins[0].broadcast_to(&usizes(&ints(0)?))),
            Op::Reshape | Op::Flatten | Op::Unflatten | Op::Squeeze | Op::ExpandDims => {
                let shape = reshaped(n, &ins[0].shape, shapes)?;
                if numel(&shape) != numel(&ins[0].shape) {
                    return Err(format!("{} to {shape:?} does not fit {:?}", n.op, ins[0].shape));
                }
                one(ins[0].with(shape, ins[0].data.clone()))
            }
            Op::Transpose => one(transpose(ins[0], &usizes(&ints(0)?))),
            Op::Slice => one(slice(ins[0], &ints(0)?, &ints(1)?, &ints(2)?)),
            Op::Concatenate => one(concatenate(ins, int(0)?)?),
            Op::Split => Ok(split(ins[0], &ints(0)?, int(1)?)),
            Op::Reduce => {
                let kind = n.reduce_kind().ok_or("a Reduce of a kind MLX does not have")?;
                one(self.reduce(n, ins[0], kind, &usizes(&ints(1)?))?)
            }
            Op::Softmax => one(self.softmax(ins[0])?),
            Op::Matmul => one(matmul(ins[0], ins[1])?),
            Op::GatherQMM | Op::QuantizedMatmul => {
                let gathered = n.op == Op::GatherQMM;
                let (mode, transposed) = (int(2)?, arg_flag(n, 3));
                let w_rank = if gathered { 3 } else { 2 };
                if mode != 0 || !transposed || ins.len() != if gathered { 6 } else { 4 } || ins[1].shape.len() != w_rank
                {
                    return Err(format!("{} other than affine, transposed, with biases", n.op));
                }
                let packing = super::quantized::Packing { group: int(0)? as usize, bits: int(1)? as usize };
                let indices = gathered.then(|| (ins[4], ins[5]));
                one(super::quantized::product(self, ins[0], (ins[1], ins[2], ins[3]), indices, packing)?)
            }
            Op::Arange => {
                let (a, b, s) = (arg_float(n, 0, shapes)?, arg_float(n, 1, shapes)?, arg_float(n, 2, shapes)?);
                let count = ((b - a) / s).ceil().max(0.0) as usize;
                one(Tensor {
                    shape: vec![count],
                    dtype: out_dtype,
                    data: Data::Num((0..count).map(|i| a + s * i as f64).collect()),
                })
            }
            Op::GatherAxis => one(gather_axis(ins[0], ins[1], int(0)?)?),
            Op::Gather => one(gather(ins[0], &ins[1..], &usizes(&ints(0)?), &usizes(&ints(1)?))?),
            Op::Scan if int(0)? == 2 => one(cumsum(ins[0], int(1)?, arg_flag(n, 2), arg_flag(n, 3))?),
            // MLX's ReduceType: 2 sums, 4 (none) replaces.
            Op::Scatter if matches!(int(0)?, 2 | 4) => {
                let (last, axes) = (ins.len() - 1, usizes(&ints(1)?));
                one(scatter(ins[0], &ins[1..last], ins[last], &axes, int(0)? == 2)?)
            }
            Op::SliceUpdate if int(0)? == 4 => one(slice_update(ins[0], ins[1], &ints(1)?, &ints(2)?, &ints(3)?)?),
            Op::Pad => one(pad(ins[0], ins[1], &usizes(&ints(0)?), &usizes(&ints(1)?), &usizes(&ints(2)?))?),
            Op::LogSumExp => {
                // log(sum(exp(x))) over the last axis: exp exact, log uninterpreted.
                self.uf_used("Log");
                let t = tag(n.op.name(), &n.args);
                let sm = self.softmax_sums(ins[0])?;
                one(sm.with(sm.shape.clone(), Data::Field(sm.field()?.into_iter().map(|e| e.uf(t)).collect())))
            }
            op => Err(format!("{op} has no field meaning yet")),
        }
    }

    fn unary(&mut self, n: &Node, x: &Tensor) -> Result<Tensor, Unfit> {
        if let Data::Num(v) = &x.data {
            if let Some(f) = num_unary(n) {
                if !matches!(
                    n.op,
                    Op::Negative
                        | Op::Square
                        | Op::Abs
                        | Op::Floor
                        | Op::Ceil
                        | Op::LogicalNot
                        | Op::Copy
                        | Op::StopGradient
                        | Op::Full
                ) {
                    // A rounded float: two equal programs may fold it to different neighbours.
                    self.uf_used(&format!("{} of constants", n.op));
                }
                return Ok(x.with(x.shape.clone(), Data::Num(v.iter().map(|a| x.dtype.round(f(*a))).collect())));
            }
        }
        let t = tag(n.op.name(), &n.args);
        let op = n.op;
        let f = x.field()?;
        let out: Result<Vec<Elem>, Unfit> = f
            .iter()
            .map(|e| -> Result<Elem, Unfit> {
                Ok(match op {
                    Op::Negative => e.neg().ok_or("negated -inf")?,
                    Op::Square => e.mul(*e).ok_or("squared -inf")?,
                    Op::Copy | Op::StopGradient | Op::Full => *e,
                    Op::Exp => exp(*e),
                    // 1 / (1 + exp(-x))
                    Op::Sigmoid => {
                        Elem::ONE.add(exp(e.neg().ok_or("sigmoid of -inf")?)).recip().ok_or("bad sigmoid")?
                    }
                    // (exp(2x) - 1) / (exp(2x) + 1)
                    Op::Tanh => {
                        let e2 = exp(e.add(*e));
                        e2.sub(Elem::ONE)
                            .ok_or("bad tanh")?
                            .mul(e2.add(Elem::ONE).recip().ok_or("bad tanh")?)
                            .ok_or("bad tanh")?
                    }
                    _ => e.uf(t),
                })
            })
            .collect();
        if !matches!(
            op,
            Op::Negative | Op::Square | Op::Copy | Op::StopGradient | Op::Full | Op::Exp | Op::Sigmoid | Op::Tanh
        ) {
            self.uf_used(op.name());
        }
        if matches!(op, Op::Exp | Op::Sigmoid | Op::Tanh) {
            self.exp_used(&f);
        }
        Ok(x.with(x.shape.clone(), Data::Field(out?)))
    }

    fn astype(&mut self, n: &Node, x: &Tensor, to: Dtype) -> Result<Tensor, Unfit> {
        match &x.data {
            Data::Num(v) => {
                let cast = |a: f64| {
                    if to.is_float() {
                        to.round(a)
                    } else if to == Dtype::Bool {
                        (a != 0.0) as i64 as f64
                    } else {
                        a.trunc()
                    }
                };
                Ok(Tensor { shape: x.shape.clone(), dtype: to, data: Data::Num(v.iter().map(|a| cast(*a)).collect()) })
            }
            Data::Field(_) if to.is_float() || !x.dtype.is_float() => Ok(Tensor { dtype: to, ..x.clone() }),
            Data::Field(f) => {
                self.uf_used("AsType to integer");
                let t = tag(n.op.name(), &n.args);
                Ok(Tensor { shape: x.shape.clone(), dtype: to, data: Data::Field(f.iter().map(|e| e.uf(t)).collect()) })
            }
        }
    }

    fn binary(&mut self, n: &Node, a: &Tensor, b: &Tensor, out: Dtype) -> Result<Tensor, Unfit> {
        let shape = broadcast_shape(&a.shape, &b.shape);
        let (a, b) = (a.broadcast_to(&shape), b.broadcast_to(&shape));
        if let (Data::Num(x), Data::Num(y)) = (&a.data, &b.data) {
            if let Some(f) = num_binary(n.op, n.args.first()) {
                let data: Vec<f64> = x.iter().zip(y).map(|(p, q)| f(*p, *q)).collect();
                let rounded: Vec<f64> = data.iter().map(|v| if out.is_float() { out.round(*v) } else { *v }).collect();
                if rounded != data || matches!(n.op, Op::Divide | Op::Power) && out.is_float() {
                    // A rounded float: two equal programs may fold it to different neighbours.
                    self.uf_used(&format!("{} of constants", n.op));
                }
                return Ok(Tensor { shape, dtype: out, data: Data::Num(rounded) });
            }
        }
        let (x, y) = (a.field()?, b.field()?);
        let t = tag(n.op.name(), &n.args);
        let op = n.op;
        let exact = matches!(op, Op::Add | Op::Subtract | Op::Multiply | Op::Divide);
        if !exact {
            self.uf_used(op.name());
        }
        let commutative =
            matches!(op, Op::Maximum | Op::Minimum | Op::Equal | Op::NotEqual | Op::LogicalAnd | Op::LogicalOr);
        let data: Result<Vec<Elem>, Unfit> = x
            .iter()
            .zip(&y)
            .map(|(p, q)| -> Result<Elem, Unfit> {
                Ok(match op {
                    Op::Add => p.add(*q),
                    Op::Subtract => p.sub(*q).ok_or("subtracted -inf")?,
                    Op::Multiply => p.mul(*q).ok_or("multiplied -inf")?,
                    Op::Divide => p.mul(q.recip().ok_or("divided by -inf")?).ok_or("divided -inf")?,
                    Op::Maximum if *q == Elem::NegInf => *p,
                    Op::Maximum if *p == Elem::NegInf => *q,
                    _ if commutative => {
                        let (u, v) = (p.uf(t), q.uf(t));
                        u.add(v).uf(t)
                    }
                    _ => p.uf(t).add(q.uf(mix(t))).uf(t),
                })
            })
            .collect();
        Ok(Tensor { shape, dtype: out, data: Data::Field(data?) })
    }

    fn select(&mut self, n: &Node, ins: &[&Tensor]) -> Result<Tensor, Unfit> {
        let shape = broadcast_shape(&broadcast_shape(&ins[0].shape, &ins[1].shape), &ins[2].shape);
        let (c, a, b) = (ins[0].broadcast_to(&shape), ins[1].broadcast_to(&shape), ins[2].broadcast_to(&shape));
        let Data::Num(c) = &c.data else {
            self.uf_used("Select on an input-dependent condition");
            let t = tag(n.op.name(), &n.args);
            let (cf, af, bf) = (c.field()?, a.field()?, b.field()?);
            let data =
                (0..cf.len()).map(|i| cf[i].uf(t).add(af[i].uf(mix(t))).add(bf[i].uf(mix(mix(t)))).uf(t)).collect();
            return Ok(Tensor { shape, dtype: a.dtype, data: Data::Field(data) });
        };
        if let (Data::Num(x), Data::Num(y)) = (&a.data, &b.data) {
            let data = (0..c.len()).map(|i| if c[i] != 0.0 { x[i] } else { y[i] }).collect();
            return Ok(Tensor { shape, dtype: a.dtype, data: Data::Num(data) });
        }
        let (x, y) = (a.field()?, b.field()?);
        let data = (0..c.len()).map(|i| if c[i] != 0.0 { x[i] } else { y[i] }).collect();
        Ok(Tensor { shape, dtype: a.dtype, data: Data::Field(data) })
    }

    fn reduce(&mut self, n: &Node, x: &Tensor, kind: ReduceKind, axes: &[usize]) -> Result<Tensor, Unfit> {
        let out_shape: Vec<usize> =
            x.shape.iter().enumerate().map(|(d, s)| if axes.contains(&d) { 1 } else { *s }).collect();
        let st = strides(&out_shape);
        let mut idx = vec![0; x.shape.len()];
        let target = |i: usize, idx: &mut Vec<usize>| {
            unravel(i, &x.shape, idx);
            idx.iter().enumerate().map(|(d, v)| if axes.contains(&d) { 0 } else { v * st[d] }).sum::<usize>()
        };
        let m = numel(&out_shape);
        if let Data::Num(v) = &x.data {
            let init = match kind {
                ReduceKind::And | ReduceKind::Prod => 1.0,
                ReduceKind::Or | ReduceKind::Sum => 0.0,
                ReduceKind::Min => f64::INFINITY,
                ReduceKind::Max => f64::NEG_INFINITY,
            };
            let mut acc = vec![init; m];
            for (i, a) in v.iter().enumerate() {
                let k = target(i, &mut idx);
                acc[k] = match kind {
                    ReduceKind::And => ((acc[k] != 0.0) && (*a != 0.0)) as i64 as f64,
                    ReduceKind::Or => ((acc[k] != 0.0) || (*a != 0.0)) as i64 as f64,
                    ReduceKind::Sum => acc[k] + a,
                    ReduceKind::Prod => acc[k] * a,
                    ReduceKind::Min => acc[k].min(*a),
                    ReduceKind::Max => acc[k].max(*a),
                };
            }
            return Ok(x.with(out_shape, Data::Num(acc)));
        }
        let f = x.field()?;
        let t = tag(n.op.name(), &n.args);
        let mut acc = vec![if kind == ReduceKind::Prod { Elem::ONE } else { Elem::ZERO }; m];
        let exact = matches!(kind, ReduceKind::Sum | ReduceKind::Prod);
        if !exact {
            self.uf_used("Reduce max/min/all/any");
        }
        let min_max = matches!(kind, ReduceKind::Min | ReduceKind::Max);
        for (i, e) in f.iter().enumerate() {
            let k = target(i, &mut idx);
            acc[k] = match kind {
                ReduceKind::Sum => acc[k].add(*e),
                ReduceKind::Prod => acc[k].mul(*e).ok_or("product with -inf")?,
                // max and min ignore -inf, as they do in the reals; the rest is uninterpreted.
                _ if *e == Elem::NegInf && min_max => acc[k],
                _ => acc[k].add(e.uf(t)),
            };
        }
        if !exact {
            acc = acc.into_iter().map(|a| a.uf(mix(t))).collect();
        }
        Ok(x.with(out_shape, Data::Field(acc)))
    }

    /// sum(exp(x)) over the last axis, keeping it as size 1.
    fn softmax_sums(&mut self, x: &Tensor) -> Result<Tensor, Unfit> {
        let f = x.field()?;
        self.exp_used(&f);
        let d = *x.shape.last().unwrap_or(&1);
        let sums = f.chunks(d.max(1)).map(|row| row.iter().fold(Elem::ZERO, |a, v| a.add(exp(*v)))).collect();
        let mut shape = x.shape.clone();
        if let Some(l) = shape.last_mut() {
            *l = 1;
        }
        Ok(x.with(shape, Data::Field(sums)))
    }

    fn softmax(&mut self, x: &Tensor) -> Result<Tensor, Unfit> {
        let f = x.field()?;
        self.exp_used(&f);
        let d = *x.shape.last().unwrap_or(&1);
        let mut out = Vec::with_capacity(f.len());
        for row in f.chunks(d.max(1)) {
            let e: Vec<Elem> = row.iter().map(|v| exp(*v)).collect();
            let s = e.iter().fold(Elem::ZERO, |a, b| a.add(*b)).recip().ok_or("softmax of -inf row")?;
            for v in e {
                out.push(v.mul(s).ok_or("softmax")?);
            }
        }
        Ok(x.with(x.shape.clone(), Data::Field(out)))
    }
}

/// exp in the field; where the exponent's residue is unknown, one uninterpreted function
/// for every primitive that exponentiates (Exp, Sigmoid, Tanh, softmax), keeping
/// exp(-x) = 1 / exp(x): `sigmoid(t)` and `exp(t) / (1 + exp(t))` of a `t = tanh(x)` agree.
fn exp(e: Elem) -> Elem {
    const EXP: u64 = 0x6578_7000; // the tag of exp's uninterpreted function
    if let Some(x) = e.exp() {
        return x;
    }
    match (e.neg(), e.q()) {
        (_, Some(0)) => Elem::ONE,
        (Some(m), Some(q)) if m.q().is_some_and(|mq| mq < q) => m.uf(EXP).recip().unwrap_or_else(|| e.uf(EXP)),
        _ => e.uf(EXP),
    }
}

fn num_unary(n: &Node) -> Option<fn(f64) -> f64> {
    Some(match n.op {
        Op::Negative => |a| -a,
        Op::Square => |a| a * a,
        Op::Abs => f64::abs,
        Op::Floor => f64::floor,
        Op::Ceil => f64::ceil,
        Op::Exp => f64::exp,
        Op::Log => f64::ln,
        Op::Sin => f64::sin,
        Op::Cos => f64::cos,
        Op::LogicalNot => |a| (a == 0.0) as i64 as f64,
        Op::Copy | Op::StopGradient | Op::Full => |a| a,
        Op::Sqrt if n.args.first() == Some(&Arg::Bool(true)) => |a| 1.0 / a.sqrt(),
        Op::Sqrt => f64::sqrt,
        _ => return None,
    })
}

fn num_binary(op: Op, first: Option<&Arg>) -> Option<fn(f64, f64) -> f64> {
    Some(match op {
        Op::Add => |x, y| x + y,
        Op::Subtract => |x, y| x - y,
        Op::Multiply => |x, y| x * y,
        Op::Divide => |x, y| x / y,
        Op::Maximum => f64::max,
        Op::Minimum => f64::min,
        Op::Power => f64::powf,
        Op::Remainder => |x, y| x - y * (x / y).floor(),
        Op::FloorDivide => |x, y| (x / y).floor(),
        Op::Equal if first != Some(&Arg::Bool(true)) => |x, y| (x == y) as i64 as f64,
        Op::NotEqual => |x, y| (x != y) as i64 as f64,
        Op::Greater => |x, y| (x > y) as i64 as f64,
        Op::GreaterEqual => |x, y| (x >= y) as i64 as f64,
        Op::Less => |x, y| (x < y) as i64 as f64,
        Op::LessEqual => |x, y| (x <= y) as i64 as f64,
        Op::LogicalAnd => |x, y| (x != 0.0 && y != 0.0) as i64 as f64,
        Op::LogicalOr => |x, y| (x != 0.0 || y != 0.0) as i64 as f64,
        _ => return None,
    })
}

fn scalar(expr: &ScalarExpr, shapes: &[Vec<i64>], dtype: Dtype) -> Result<f64, Unfit> {
    let d = |dim: &Dim| dim.eval(shapes).map(|v| v as f64).ok_or_else(|| "a dimension does not evaluate".to_string());
    Ok(dtype.round(match expr {
        ScalarExpr::Lit { v } => *v,
        ScalarExpr::Recip { dim } => 1.0 / d(dim)?,
        ScalarExpr::Rsqrt { dim } => d(dim)?.powf(-0.5),
        ScalarExpr::Of { dim } => d(dim)?,
    }))
}

fn arg_int(n: &Node, i: usize, shapes: &[Vec<i64>]) -> Result<i64, Unfit> {
    n.args
        .get(i)
        .and_then(Arg::int)
        .and_then(|d| d.eval(shapes))
        .ok_or_else(|| format!("{}: argument {i} is not an integer", n.op))
}

fn arg_ints(n: &Node, i: usize, shapes: &[Vec<i64>]) -> Result<Vec<i64>, Unfit> {
    let items = n.args.get(i).and_then(Arg::list).ok_or_else(|| format!("{}: argument {i} is not a list", n.op))?;
    items
        .iter()
        .map(|a| a.int().and_then(|d| d.eval(shapes)).ok_or_else(|| format!("{}: a list item is not an integer", n.op)))
        .collect()
}

fn arg_float(n: &Node, i: usize, shapes: &[Vec<i64>]) -> Result<f64, Unfit> {
    match n.args.get(i) {
        Some(Arg::Float(f)) => Ok(*f),
        Some(Arg::Int(d)) => d.eval(shapes).map(|v| v as f64).ok_or_else(|| "bad dimension".into()),
        _ => Err(format!("{}: argument {i} is not a number", n.op)),
    }
}

/// The output shape of a shape-only primitive, from its arguments.
fn reshaped(n: &Node, input: &[usize], shapes: &[Vec<i64>]) -> Result<Vec<usize>, Unfit> {
    let rank = input.len() as i64;
    let axis = |a: i64, r: i64| if a < 0 { (a + r) as usize } else { a as usize };
    Ok(match n.op {
        Op::Reshape => {
            let mut shape = arg_ints(n, 0, shapes)?;
            if let Some(k) = shape.iter().position(|d| *d < 0) {
                let known: i64 = shape.iter().filter(|d| **d >= 0).product();
                shape[k] = numel(input) as i64 / known.max(1);
            }
            usizes(&shape)
        }
        Op::Squeeze => {
            let axes: Vec<usize> = arg_ints(n, 0, shapes)?.into_iter().map(|a| axis(a, rank)).collect();
            input.iter().enumerate().filter(|(d, _)| !axes.contains(d)).map(|(_, s)| *s).collect()
        }
        Op::ExpandDims => {
            let out_rank = rank + arg_ints(n, 0, shapes)?.len() as i64;
            let axes: Vec<usize> = arg_ints(n, 0, shapes)?.into_iter().map(|a| axis(a, out_rank)).collect();
            let mut rest = input.iter();
            (0..out_rank as usize).map(|d| if axes.contains(&d) { 1 } else { *rest.next().unwrap_or(&1) }).collect()
        }
        Op::Flatten => {
            let (a, b) = (axis(arg_int(n, 0, shapes)?, rank), axis(arg_int(n, 1, shapes)?, rank));
            let mut out = input[..a].to_vec();
            out.push(input[a..=b].iter().product());
            out.extend_from_slice(&input[b + 1..]);
            out
        }
        _ => {
            let a = axis(arg_int(n, 0, shapes)?, rank);
            let mut inner = arg_ints(n, 1, shapes)?;
            if let Some(k) = inner.iter().position(|d| *d < 0) {
                let known: i64 = inner.iter().filter(|d| **d >= 0).product();
                inner[k] = input[a] as i64 / known.max(1);
            }
            let mut out = input[..a].to_vec();
            out.extend(usizes(&inner));
            out.extend_from_slice(&input[a + 1..]);
            out
        }
    })
}

fn arg_flag(n: &Node, i: usize) -> bool {
    matches!(n.args.get(i), Some(Arg::Bool(true)))
}

fn cumsum(x: &Tensor, axis: i64, reverse: bool, inclusive: bool) -> Result<Tensor, Unfit> {
    let axis = if axis < 0 { (axis + x.shape.len() as i64) as usize } else { axis as usize };
    let f = x.field()?;
    let st = strides(&x.shape);
    let len = x.shape[axis];
    let mut out = vec![Elem::ZERO; f.len()];
    let mut idx = vec![0; x.shape.len()];
    for i in 0..f.len() {
        unravel(i, &x.shape, &mut idx);
        if idx[axis] != 0 {
            continue;
        }
        let base = i;
        let order: Vec<usize> = if reverse { (0..len).rev().collect() } else { (0..len).collect() };
        let mut acc = Elem::ZERO;
        for k in order {
            let at = base + k * st[axis];
            if inclusive {
                acc = acc.add(f[at]);
                out[at] = acc;
            } else {
                out[at] = acc;
                acc = acc.add(f[at]);
            }
        }
    }
    Ok(x.with(x.shape.clone(), Data::Field(out)))
}

/// `x` with `update` written over the strided region `start:stop:step`.
fn slice_update(x: &Tensor, update: &Tensor, start: &[i64], stop: &[i64], step: &[i64]) -> Result<Tensor, Unfit> {
    let (mut out, u) = (x.field()?, update.field()?);
    let st = strides(&x.shape);
    let region: Vec<usize> = (0..x.shape.len())
        .map(|d| ((stop[d] - start[d] + step[d] - step[d].signum()) / step[d]).max(0) as usize)
        .collect();
    if numel(&region) != u.len() {
        return Err("a slice update of the wrong size".into());
    }
    let mut idx = vec![0; region.len()];
    for (i, e) in u.iter().enumerate() {
        unravel(i, &region, &mut idx);
        let at: usize = (0..region.len()).map(|d| (start[d] + step[d] * idx[d] as i64) as usize * st[d]).sum();
        out[at] = *e;
    }
    Ok(x.with(x.shape.clone(), Data::Field(out)))
}

/// `x` with `updates[p, o]` at `indices[p] + o` along `axes` (`o` along the others),
/// added where `add`; the indices input-independent, no place written twice unless added
/// (MLX leaves the order of such writes open).
fn scatter(x: &Tensor, indices: &[&Tensor], updates: &Tensor, axes: &[usize], add: bool) -> Result<Tensor, Unfit> {
    let lead = indices.iter().fold(vec![], |s, u| broadcast_shape(&s, &u.shape));
    let mut idx: Vec<Vec<f64>> = vec![];
    for t in indices {
        let Data::Num(v) = t.broadcast_to(&lead).data else {
            return Err("a scatter by input-dependent indices".into());
        };
        idx.push(v);
    }
    let (rank, nl) = (x.shape.len(), lead.len());
    let fits = updates.shape.len() == nl + rank && updates.shape[..nl] == lead[..];
    if axes.len() != indices.len() || !fits || axes.iter().any(|a| *a >= rank) {
        return Err("a scatter whose updates do not fit".into());
    }
    let (st, lst, mut at) = (strides(&x.shape), strides(&lead), vec![0; updates.shape.len()]);
    let mut places = Vec::with_capacity(numel(&updates.shape));
    for i in 0..numel(&updates.shape) {
        unravel(i, &updates.shape, &mut at);
        let li: usize = at[..nl].iter().zip(&lst).map(|(a, b)| a * b).sum();
        let mut place = 0;
        for d in 0..rank {
            let base = match axes.iter().position(|a| *a == d) {
                Some(k) => (idx[k][li] as i64).rem_euclid(x.shape[d] as i64) as usize,
                None => 0,
            };
            if base + at[nl + d] >= x.shape[d] {
                return Err("a scatter out of bounds".into());
            }
            place += (base + at[nl + d]) * st[d];
        }
        places.push(place);
    }
    if !add && places.iter().collect::<std::collections::BTreeSet<_>>().len() != places.len() {
        return Err("a scatter that writes one place twice".into());
    }
    let data = match (&x.data, &updates.data) {
        (Data::Num(a), Data::Num(u)) => {
            let mut out = a.clone();
            places.iter().zip(u).for_each(|(at, e)| out[*at] = if add { out[*at] + e } else { *e });
            Data::Num(out)
        }
        _ => {
            let (mut out, u) = (x.field()?, updates.field()?);
            places.iter().zip(u).for_each(|(at, e)| out[*at] = if add { out[*at].add(e) } else { e });
            Data::Field(out)
        }
    };
    Ok(x.with(x.shape.clone(), data))
}

fn pad(x: &Tensor, value: &Tensor, axes: &[usize], low: &[usize], high: &[usize]) -> Result<Tensor, Unfit> {
    let mut shape = x.shape.clone();
    for (k, a) in axes.iter().enumerate() {
        shape[*a] += low[k] + high[k];
    }
    let (xf, v) = (x.field()?, value.field()?.first().copied().ok_or("pad value")?);
    let st = strides(&x.shape);
    let mut lo = vec![0; x.shape.len()];
    for (k, a) in axes.iter().enumerate() {
        lo[*a] = low[k];
    }
    let mut idx = vec![0; shape.len()];
    let data = (0..numel(&shape))
        .map(|i| {
            unravel(i, &shape, &mut idx);
            let inside = (0..shape.len()).all(|d| idx[d] >= lo[d] && idx[d] - lo[d] < x.shape[d]);
            if inside {
                xf[(0..shape.len()).map(|d| (idx[d] - lo[d]) * st[d]).sum::<usize>()]
            } else {
                v
            }
        })
        .collect();
    Ok(x.with(shape, Data::Field(data)))
}

/// MLX's Gather with input-independent indices: out[i..., s...] = x[indices at axes, s elsewhere].
fn gather(x: &Tensor, indices: &[&Tensor], axes: &[usize], sizes: &[usize]) -> Result<Tensor, Unfit> {
    let mut idx_vals = vec![];
    for t in indices {
        let Data::Num(v) = &t.data else { return Err("a gather by input-dependent indices".into()) };
        idx_vals.push((t.broadcast_to(&indices.iter().fold(vec![], |s, u| broadcast_shape(&s, &u.shape))), v.len()));
    }
    let lead = indices.iter().fold(vec![], |s, u| broadcast_shape(&s, &u.shape));
    let idx: Vec<Vec<f64>> =
        idx_vals.into_iter().map(|(t, _)| if let Data::Num(v) = t.data { v } else { vec![] }).collect();
    let shape: Vec<usize> = lead.iter().copied().chain(sizes.iter().copied()).collect();
    let st = strides(&x.shape);
    let nl = lead.len();
    let lst = strides(&lead);
    let dims = x.shape.clone();
    let axes = axes.to_vec();
    Ok(x.remap(shape, move |o| {
        let li: usize = o[..nl].iter().zip(&lst).map(|(a, b)| a * b).sum();
        (0..dims.len())
            .map(|d| {
                let v = match axes.iter().position(|a| *a == d) {
                    Some(k) => (idx[k][li] as i64).rem_euclid(dims[d] as i64) as usize + o[nl + d],
                    None => o[nl + d],
                };
                v * st[d]
            })
            .sum()
    }))
}

fn usizes(v: &[i64]) -> Vec<usize> {
    v.iter().map(|x| *x as usize).collect()
}

fn transpose(x: &Tensor, perm: &[usize]) -> Tensor {
    let st = strides(&x.shape);
    let shape: Vec<usize> = perm.iter().map(|p| x.shape[*p]).collect();
    let perm = perm.to_vec();
    x.remap(shape, move |o| o.iter().enumerate().map(|(d, v)| v * st[perm[d]]).sum())
}

fn slice(x: &Tensor, start: &[i64], stop: &[i64], step: &[i64]) -> Tensor {
    let shape: Vec<usize> = (0..x.shape.len())
        .map(|d| {
            let n = (stop[d] - start[d] + step[d] - step[d].signum()) / step[d];
            n.max(0) as usize
        })
        .collect();
    let st = strides(&x.shape);
    let (start, step) = (start.to_vec(), step.to_vec());
    x.remap(shape, move |o| o.iter().enumerate().map(|(d, v)| (start[d] + step[d] * *v as i64) as usize * st[d]).sum())
}

fn concatenate(ins: &[&Tensor], axis: i64) -> Result<Tensor, Unfit> {
    let axis = axis as usize;
    let mut shape = ins[0].shape.clone();
    shape[axis] = ins.iter().map(|t| t.shape[axis]).sum();
    let all_num = ins.iter().all(|t| matches!(t.data, Data::Num(_)));
    let parts: Vec<Tensor> = if all_num {
        ins.iter().map(|t| (*t).clone()).collect()
    } else {
        ins.iter().map(|t| Ok(t.with(t.shape.clone(), Data::Field(t.field()?)))).collect::<Result<_, Unfit>>()?
    };
    let mut offsets = vec![0];
    for t in &parts {
        offsets.push(offsets.last().unwrap() + t.shape[axis]);
    }
    let n = numel(&shape);
    let mut idx = vec![0; shape.len()];
    let mut num = vec![];
    let mut fld = vec![];
    for i in 0..n {
        unravel(i, &shape, &mut idx);
        let k = offsets.iter().rposition(|o| *o <= idx[axis]).unwrap().min(parts.len() - 1);
        let t = &parts[k];
        let mut j = idx.clone();
        j[axis] -= offsets[k];
        let flat: usize = j.iter().zip(strides(&t.shape)).map(|(a, b)| a * b).sum();
        match &t.data {
            Data::Num(v) => num.push(v[flat]),
            Data::Field(v) => fld.push(v[flat]),
        }
    }
    let data = if all_num { Data::Num(num) } else { Data::Field(fld) };
    Ok(Tensor { shape, dtype: ins[0].dtype, data })
}

fn split(x: &Tensor, indices: &[i64], axis: i64) -> Vec<Tensor> {
    let axis = axis as usize;
    let mut bounds = vec![0];
    bounds.extend(indices.iter().map(|i| *i as usize));
    bounds.push(x.shape[axis]);
    bounds
        .windows(2)
        .map(|w| {
            let mut start = vec![0i64; x.shape.len()];
            let mut stop: Vec<i64> = x.shape.iter().map(|d| *d as i64).collect();
            start[axis] = w[0] as i64;
            stop[axis] = w[1] as i64;
            slice(x, &start, &stop, &vec![1; x.shape.len()])
        })
        .collect()
}

fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor, Unfit> {
    let (ra, rb) = (a.shape.len(), b.shape.len());
    if ra < 2 || rb < 2 {
        return Err("matmul of vectors has no field meaning yet".into());
    }
    let (m, k, n) = (a.shape[ra - 2], a.shape[ra - 1], b.shape[rb - 1]);
    let batch = broadcast_shape(&a.shape[..ra - 2], &b.shape[..rb - 2]);
    let a = a.broadcast_to(&[batch.clone(), vec![m, k]].concat());
    let b = b.broadcast_to(&[batch.clone(), vec![k, n]].concat());
    let (x, y) = (a.field()?, b.field()?);
    let mut out = Vec::with_capacity(numel(&batch) * m * n);
    for bi in 0..numel(&batch) {
        let (xa, yb) = (&x[bi * m * k..(bi + 1) * m * k], &y[bi * k * n..(bi + 1) * k * n]);
        for i in 0..m {
            for j in 0..n {
                let mut s = Elem::ZERO;
                for l in 0..k {
                    s = s.add(xa[i * k + l].mul(yb[l * n + j]).ok_or("matmul with -inf")?);
                }
                out.push(s);
            }
        }
    }
    Ok(Tensor { shape: [batch, vec![m, n]].concat(), dtype: a.dtype, data: Data::Field(out) })
}

fn gather_axis(x: &Tensor, idx: &Tensor, axis: i64) -> Result<Tensor, Unfit> {
    let Data::Num(iv) = &idx.data else { return Err("a gather by input-dependent indices".into()) };
    let axis = axis as usize;
    let st = strides(&x.shape);
    let ist = strides(&idx.shape);
    let iv = iv.clone();
    let len = x.shape[axis] as i64;
    Ok(x.remap(idx.shape.clone(), move |o| {
        let flat: usize = o.iter().zip(&ist).map(|(a, b)| a * b).sum();
        let k = (iv[flat] as i64).rem_euclid(len) as usize;
        o.iter().enumerate().map(|(d, v)| if d == axis { k * st[d] } else { v * st[d] }).sum()
    }))
}
