//! Generated kernels in the field: each kernel instruction runs as the IR primitive it
//! stands for (exp as `Exp`, a row sum as a last-axis `Reduce`...), in float32, so a
//! kernel candidate is checked exactly like the program it was lowered from.

use super::eval::{Data, Interp, Tensor, Unfit};
use superopt_ir::{Arg, Dim, Dtype, Node, Op as Prim};
use superopt_kernel::ir::Inst;
use superopt_kernel::{Binary, Call, Layout, Op, Reduce, Unary};

fn unary_op(u: Unary) -> (Prim, Vec<Arg>) {
    let op = match u {
        Unary::Neg => Prim::Negative,
        Unary::Exp => Prim::Exp,
        Unary::Log => return (Prim::Log, vec![Arg::Int(Dim::constant(2))]),
        Unary::Sqrt => return (Prim::Sqrt, vec![Arg::Bool(false)]),
        Unary::Rsqrt => return (Prim::Sqrt, vec![Arg::Bool(true)]),
        Unary::Abs => Prim::Abs,
        Unary::Square => Prim::Square,
        Unary::Sigmoid => Prim::Sigmoid,
        Unary::Tanh => Prim::Tanh,
        Unary::Erf => Prim::Erf,
        Unary::Sin => Prim::Sin,
        Unary::Cos => Prim::Cos,
    };
    (op, vec![])
}

fn binary_op(b: Binary) -> (Prim, Dtype) {
    match b {
        Binary::Add => (Prim::Add, Dtype::Float32),
        Binary::Sub => (Prim::Subtract, Dtype::Float32),
        Binary::Mul => (Prim::Multiply, Dtype::Float32),
        Binary::Div => (Prim::Divide, Dtype::Float32),
        Binary::Max => (Prim::Maximum, Dtype::Float32),
        Binary::Min => (Prim::Minimum, Dtype::Float32),
        Binary::Pow => (Prim::Power, Dtype::Float32),
        Binary::Gt => (Prim::Greater, Dtype::Bool),
        Binary::Ge => (Prim::GreaterEqual, Dtype::Bool),
        Binary::Lt => (Prim::Less, Dtype::Bool),
        Binary::Le => (Prim::LessEqual, Dtype::Bool),
        Binary::Eq => (Prim::Equal, Dtype::Bool),
        Binary::Ne => (Prim::NotEqual, Dtype::Bool),
    }
}

pub(super) fn scalar(v: f64) -> Tensor {
    Tensor { shape: vec![], dtype: Dtype::Float32, data: Data::Num(vec![v]) }
}

impl Interp {
    /// A `Kernel` node: its instructions as primitives, its outputs at their layouts.
    pub(super) fn kernel(&mut self, n: &Node, ins: &[&Tensor], shapes: &[Vec<i64>]) -> Result<Vec<Tensor>, Unfit> {
        let call = Call::of_node(n).ok_or("a Kernel node without its kernel")?;
        let k = match &call.body {
            superopt_kernel::Body::Rows(k) => k,
            superopt_kernel::Body::Quantized(q) => return super::quantized::kernel(self, q, ins, shapes),
            superopt_kernel::Body::Solve(s) => return Ok(vec![super::solve::kernel(s, ins[0])?]),
            superopt_kernel::Body::Scan(s) => return super::scan::kernel(self, s, ins, shapes),
        };
        let full =
            k.inputs.iter().position(|o| o.layout == Layout::Full).ok_or("a kernel without a full-size input")?;
        let space = ins[full].shape.clone();
        let input = |i: usize| Tensor { dtype: Dtype::Float32, ..ins[i].clone() };
        let vals = self.insts(&k.insts, &input, space.len() - 1, *space.last().unwrap_or(&1) as f64, shapes)?;
        let mut outs = vec![];
        for o in &k.outputs {
            let mut shape = space.clone();
            if o.layout == Layout::Row {
                *shape.last_mut().unwrap() = 1;
            }
            let v = vals[o.value].broadcast_to(&shape);
            let node = Node { op: Prim::AsType, args: vec![Arg::Dtype(o.dtype)], inputs: vec![], outputs: vec![] };
            outs.push(self.apply(&node, &[&v], o.dtype, shapes)?.remove(0));
        }
        Ok(outs)
    }

    /// Kernel instructions as primitives on tensors, `input(i)` for `Input(i)`, reductions
    /// over `axis` (kept), `Len` as `len`.
    pub(super) fn insts(
        &mut self,
        insts: &[Inst],
        input: &dyn Fn(usize) -> Tensor,
        axis: usize,
        len: f64,
        shapes: &[Vec<i64>],
    ) -> Result<Vec<Tensor>, Unfit> {
        let mut vals: Vec<Tensor> = Vec::with_capacity(insts.len());
        for inst in insts {
            let a = |i: usize| &vals[inst.args[i]];
            let run =
                |me: &mut Interp, op: Prim, args: Vec<Arg>, xs: Vec<&Tensor>, out: Dtype| -> Result<Tensor, Unfit> {
                    let node = Node { op, args, inputs: vec![], outputs: vec![] };
                    Ok(me.apply(&node, &xs, out, shapes)?.remove(0))
                };
            let t = match inst.op {
                Op::Input(i) => input(i),
                Op::Const(c) => scalar(c),
                Op::Len => scalar(len),
                Op::Unary(u) => {
                    let (op, args) = unary_op(u);
                    run(self, op, args, vec![a(0)], Dtype::Float32)?
                }
                Op::Binary(b) => {
                    let (op, out) = binary_op(b);
                    run(self, op, vec![], vec![a(0), a(1)], out)?
                }
                Op::Select => {
                    let cond = if a(0).dtype == Dtype::Bool {
                        a(0).clone()
                    } else {
                        run(self, Prim::NotEqual, vec![], vec![a(0), &scalar(0.0)], Dtype::Bool)?
                    };
                    run(self, Prim::Select, vec![], vec![&cond, a(1), a(2)], Dtype::Float32)?
                }
                Op::Reduce(r) => {
                    let kind = match r {
                        Reduce::Sum => 2,
                        Reduce::Min => 4,
                        Reduce::Max => 5,
                    };
                    let args =
                        vec![Arg::Int(Dim::constant(kind)), Arg::List(vec![Arg::Int(Dim::constant(axis as i64))])];
                    run(self, Prim::Reduce, args, vec![a(0)], Dtype::Float32)?
                }
                Op::Cast(d) => {
                    let narrow = run(self, Prim::AsType, vec![Arg::Dtype(d)], vec![a(0)], d)?;
                    run(self, Prim::AsType, vec![Arg::Dtype(Dtype::Float32)], vec![&narrow], Dtype::Float32)?
                }
            };
            vals.push(t);
        }
        Ok(vals)
    }
}
