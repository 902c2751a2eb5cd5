//! The kernel IR: one GPU kernel over a `[rows, n]` iteration space.
//!
//! A kernel reads operands laid out against that space (a full array, one value per row,
//! one per column, or one in all), runs a list of instructions in SSA form (instruction
//! `k` defines value `k`) and writes outputs. Arithmetic is in float32 whatever the
//! operands' dtypes; a `Cast` rounds through a narrower float where the program did.

use serde::{Deserialize, Serialize};
use superopt_ir::Dtype;

/// The dtypes a kernel reads and writes: the GPU float types (float64 has no GPU kernel).
pub fn computable(d: Dtype) -> bool {
    matches!(d, Dtype::Float32 | Dtype::Float16 | Dtype::Bfloat16)
}

/// How an operand maps onto the `[rows, n]` iteration space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `[rows, n]`: one element per position.
    Full,
    /// `[rows, 1]`: one value per row.
    Row,
    /// `[n]` (after leading 1s): one value per column, shared by every row.
    Col,
    /// One value for the whole kernel.
    Scalar,
}

/// What a value varies over: each position, or only each row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Row,
    Elem,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unary {
    Neg,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Abs,
    Square,
    Sigmoid,
    Tanh,
    Erf,
    Sin,
    Cos,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    /// NaN-propagating, as MLX's `maximum`.
    Max,
    Min,
    Pow,
    /// Comparisons give 1.0 or 0.0.
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduce {
    Sum,
    /// NaN-propagating.
    Max,
    Min,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v", rename_all = "lowercase")]
pub enum Op {
    /// The `k`-th input operand, as float32.
    Input(usize),
    Const(f64),
    /// The row length `n`, as a float.
    Len,
    Unary(Unary),
    Binary(Binary),
    /// `args[0] != 0 ? args[1] : args[2]`.
    Select,
    /// Over the row of an `Elem` value: a `Row` value. Only in `Form::Rows` kernels.
    Reduce(Reduce),
    /// Rounds through a float dtype (identity for float32).
    Cast(Dtype),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inst {
    pub op: Op,
    pub args: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operand {
    pub name: String,
    pub layout: Layout,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub name: String,
    /// `Full` or `Row`.
    pub layout: Layout,
    pub dtype: Dtype,
    /// The value it stores.
    pub value: usize,
}

/// How threads cover the iteration space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    /// Independent positions: packs of `VEC` elements, `UNROLL` packs per thread.
    Elementwise,
    /// `TPR` threads per row, the row kept in registers between its reductions.
    Rows,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kernel {
    /// A C identifier.
    pub name: String,
    pub form: Form,
    pub inputs: Vec<Operand>,
    pub insts: Vec<Inst>,
    pub outputs: Vec<Output>,
}

#[derive(Debug, PartialEq)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid kernel: {}", self.0)
    }
}

impl Kernel {
    /// The level of every value, in instruction order.
    pub fn levels(&self) -> Vec<Level> {
        let mut out: Vec<Level> = Vec::with_capacity(self.insts.len());
        for inst in &self.insts {
            let l = match inst.op {
                Op::Input(i) => match self.inputs[i].layout {
                    Layout::Full | Layout::Col => Level::Elem,
                    Layout::Row | Layout::Scalar => Level::Row,
                },
                Op::Const(_) | Op::Len | Op::Reduce(_) => Level::Row,
                _ => inst.args.iter().map(|a| out[*a]).max().unwrap_or(Level::Row),
            };
            out.push(l);
        }
        out
    }

    /// Checks the SSA order, arities, layouts and levels the emitters rely on.
    pub fn check(&self) -> Result<(), Invalid> {
        let bad = |s: String| Err(Invalid(s));
        if let Some((k, a)) =
            self.insts.iter().enumerate().find_map(|(k, i)| i.args.iter().find(|a| **a >= k).map(|a| (k, a)))
        {
            return bad(format!("value {k} reads value {a}, defined later"));
        }
        if let Some((k, i)) = self.insts.iter().enumerate().find_map(|(k, i)| match i.op {
            Op::Input(i) if i >= self.inputs.len() => Some((k, i)),
            _ => None,
        }) {
            return bad(format!("value {k} reads input {i} of {}", self.inputs.len()));
        }
        let levels = self.levels();
        for (k, inst) in self.insts.iter().enumerate() {
            let arity = match inst.op {
                Op::Input(_) | Op::Const(_) | Op::Len => 0,
                Op::Unary(_) | Op::Reduce(_) | Op::Cast(_) => 1,
                Op::Binary(_) => 2,
                Op::Select => 3,
            };
            if inst.args.len() != arity {
                return bad(format!("value {k} takes {arity} arguments, has {}", inst.args.len()));
            }
            if let Op::Reduce(_) = inst.op {
                if self.form != Form::Rows {
                    return bad(format!("value {k} reduces inside an elementwise kernel"));
                }
                if levels[inst.args[0]] != Level::Elem {
                    return bad(format!("value {k} reduces a value that is already one per row"));
                }
            }
            if let Op::Cast(d) = inst.op {
                if !computable(d) {
                    return bad(format!("value {k} casts to {}", d.name()));
                }
            }
        }
        if self.outputs.is_empty() {
            return bad("no outputs".into());
        }
        if !self.inputs.iter().any(|o| o.layout == Layout::Full) {
            return bad("no full-size input fixes the iteration space".into());
        }
        for o in &self.outputs {
            if o.value >= self.insts.len() {
                return bad(format!("output {} stores undefined value {}", o.name, o.value));
            }
            match o.layout {
                Layout::Full => {}
                Layout::Row if levels[o.value] == Level::Row && self.form == Form::Rows => {}
                l => return bad(format!("output {} has layout {l:?}", o.name)),
            }
            if !computable(o.dtype) {
                return bad(format!("output {} is {}", o.name, o.dtype.name()));
            }
        }
        Ok(())
    }

    /// Reductions in the kernel: the passes over a row beyond the first read.
    pub fn reductions(&self) -> usize {
        self.insts.iter().filter(|i| matches!(i.op, Op::Reduce(_))).count()
    }
}

/// Builds a kernel instruction by instruction; each method returns the new value.
pub struct Builder {
    pub kernel: Kernel,
}

impl Builder {
    pub fn new(name: &str, form: Form) -> Builder {
        Builder { kernel: Kernel { name: name.into(), form, inputs: vec![], insts: vec![], outputs: vec![] } }
    }

    fn push(&mut self, op: Op, args: Vec<usize>) -> usize {
        self.kernel.insts.push(Inst { op, args });
        self.kernel.insts.len() - 1
    }

    pub fn input(&mut self, name: &str, layout: Layout) -> usize {
        self.kernel.inputs.push(Operand { name: name.into(), layout });
        let i = self.kernel.inputs.len() - 1;
        self.push(Op::Input(i), vec![])
    }

    pub fn constant(&mut self, v: f64) -> usize {
        self.push(Op::Const(v), vec![])
    }

    /// The row length `n` (a value, not the builder's size).
    pub fn row_len(&mut self) -> usize {
        self.push(Op::Len, vec![])
    }

    pub fn unary(&mut self, u: Unary, a: usize) -> usize {
        self.push(Op::Unary(u), vec![a])
    }

    pub fn binary(&mut self, b: Binary, x: usize, y: usize) -> usize {
        self.push(Op::Binary(b), vec![x, y])
    }

    pub fn select(&mut self, c: usize, x: usize, y: usize) -> usize {
        self.push(Op::Select, vec![c, x, y])
    }

    pub fn reduce(&mut self, r: Reduce, a: usize) -> usize {
        self.push(Op::Reduce(r), vec![a])
    }

    pub fn cast(&mut self, d: Dtype, a: usize) -> usize {
        self.push(Op::Cast(d), vec![a])
    }

    pub fn output(&mut self, name: &str, layout: Layout, dtype: Dtype, value: usize) {
        self.kernel.outputs.push(Output { name: name.into(), layout, dtype, value });
    }

    pub fn finish(self) -> Result<Kernel, Invalid> {
        self.kernel.check()?;
        Ok(self.kernel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows_with(f: impl FnOnce(&mut Builder, usize) -> usize) -> Result<Kernel, Invalid> {
        let mut b = Builder::new("k", Form::Rows);
        let x = b.input("x", Layout::Full);
        let y = f(&mut b, x);
        b.output("out", Layout::Full, Dtype::Float32, y);
        b.finish()
    }

    #[test]
    fn a_valid_kernel_passes_and_has_levels() {
        let k = rows_with(|b, x| {
            let s = b.reduce(Reduce::Sum, x);
            b.binary(Binary::Sub, x, s)
        })
        .unwrap();
        assert_eq!(k.levels(), vec![Level::Elem, Level::Row, Level::Elem]);
        assert_eq!(k.reductions(), 1);
    }

    #[test]
    fn reducing_a_row_value_is_rejected() {
        let e = rows_with(|b, x| {
            let s = b.reduce(Reduce::Sum, x);
            b.reduce(Reduce::Max, s)
        });
        assert!(e.unwrap_err().0.contains("already one per row"));
    }

    #[test]
    fn reductions_in_an_elementwise_kernel_are_rejected() {
        let mut b = Builder::new("k", Form::Elementwise);
        let x = b.input("x", Layout::Full);
        let s = b.reduce(Reduce::Sum, x);
        b.output("out", Layout::Full, Dtype::Float32, s);
        assert!(b.finish().unwrap_err().0.contains("elementwise"));
    }

    #[test]
    fn reading_a_later_value_is_rejected() {
        let mut b = Builder::new("k", Form::Elementwise);
        let x = b.input("x", Layout::Full);
        b.kernel.insts.push(Inst { op: Op::Unary(Unary::Exp), args: vec![x + 1] });
        b.output("out", Layout::Full, Dtype::Float32, x);
        assert!(b.finish().unwrap_err().0.contains("defined later"));
    }

    #[test]
    fn integer_outputs_and_casts_are_rejected() {
        let e = rows_with(|b, x| b.cast(Dtype::Int32, x));
        assert!(e.unwrap_err().0.contains("casts to int32"));
        let mut b = Builder::new("k", Form::Elementwise);
        let x = b.input("x", Layout::Full);
        b.output("out", Layout::Full, Dtype::Int32, x);
        assert!(b.finish().unwrap_err().0.contains("int32"));
    }

    #[test]
    fn a_row_output_needs_a_rows_kernel_and_a_row_value() {
        let mut b = Builder::new("k", Form::Rows);
        let x = b.input("x", Layout::Full);
        b.output("out", Layout::Row, Dtype::Float32, x);
        assert!(b.finish().unwrap_err().0.contains("layout Row"));
    }

    #[test]
    fn without_a_full_input_there_is_no_iteration_space() {
        let mut b = Builder::new("k", Form::Elementwise);
        let w = b.input("w", Layout::Col);
        b.output("out", Layout::Full, Dtype::Float32, w);
        assert!(b.finish().unwrap_err().0.contains("no full-size input"));
    }
}
