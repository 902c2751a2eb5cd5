//! The program: values, inputs, constants, nodes and outputs.

use crate::{Dim, Dtype};
use serde::{Deserialize, Serialize};

pub type ValueId = usize;

/// One array: its shape (as traced at the reference size) and dtype.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Value {
    pub shape: Vec<i64>,
    pub dtype: Dtype,
}

impl Value {
    pub fn numel(&self) -> i64 {
        self.shape.iter().product()
    }
}

/// A primitive's argument, as MLX's `state()` gives it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v", rename_all = "lowercase")]
pub enum Arg {
    Int(Dim),
    Float(f64),
    Bool(bool),
    Str(String),
    Dtype(Dtype),
    List(Vec<Arg>),
    None,
}

impl Arg {
    pub fn int(&self) -> Option<&Dim> {
        match self {
            Arg::Int(d) => Some(d),
            _ => None,
        }
    }
    pub fn list(&self) -> Option<&[Arg]> {
        match self {
            Arg::List(v) => Some(v),
            _ => None,
        }
    }
    /// A list of constant integers (axes, a shape, a permutation).
    pub fn ints(xs: &[i64]) -> Arg {
        Arg::List(xs.iter().map(|x| Arg::Int(Dim::constant(*x))).collect())
    }
    /// A list's integers; `None` where one is no integer or depends on the input dims.
    pub fn const_ints(&self) -> Option<Vec<i64>> {
        self.list()?.iter().map(|a| a.int().and_then(Dim::as_const)).collect()
    }
}

/// A scalar constant's value; it may depend on input dimensions (e.g. `1 / n` of a mean).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum ScalarExpr {
    /// A literal, exact in the constant's dtype.
    Lit { v: f64 },
    /// `1.0 / dim`, computed in float64 then rounded to the dtype.
    Recip { dim: Dim },
    /// `dim ** -0.5`, likewise.
    Rsqrt { dim: Dim },
    /// `float(dim)`, likewise.
    Of { dim: Dim },
}

/// What a constant holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum ConstData {
    Scalar {
        expr: ScalarExpr,
    },
    /// An array kept by content hash; its bytes stay with the worker until emitted.
    Tensor {
        key: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Constant {
    pub value: ValueId,
    pub data: ConstData,
}

/// One primitive application.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub op: crate::Op,
    pub args: Vec<Arg>,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
}

impl Node {
    /// What a `Reduce` node computes (its first argument); `None` for other nodes.
    pub fn reduce_kind(&self) -> Option<crate::ReduceKind> {
        if self.op != crate::Op::Reduce {
            return None;
        }
        self.args.first()?.int()?.as_const().and_then(crate::ReduceKind::of_mlx)
    }
}

/// A parameter of the traced function, in call order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Param {
    /// An array parameter, the `input`-th array input of the program.
    Array { name: String, input: usize, keyword: bool },
    /// A Python value the trace baked in (an int, a string...), as JSON.
    Literal { name: String, value: serde_json::Value, keyword: bool },
}

impl Param {
    pub fn name(&self) -> &str {
        match self {
            Param::Array { name, .. } | Param::Literal { name, .. } => name,
        }
    }
    pub fn keyword(&self) -> bool {
        match self {
            Param::Array { keyword, .. } | Param::Literal { keyword, .. } => *keyword,
        }
    }
}

/// How a parameter of `fn` may be passed (Python's `inspect.Parameter` kinds; a function
/// with `*args` or `**kwargs` records none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    PositionalOnly,
    PositionalOrKeyword,
    KeywordOnly,
}

/// A parameter's default in `fn`'s signature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "is", rename_all = "lowercase")]
pub enum FnDefault {
    Required,
    /// None, a bool, an int, a finite float or a string, as JSON.
    Literal {
        value: serde_json::Value,
    },
    /// Any other object: the written module cannot spell it, only pass it on.
    Opaque,
}

/// One parameter of `fn` as declared, whether or not the traces passed it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FnParam {
    pub name: String,
    pub kind: ParamKind,
    pub default: FnDefault,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    Array,
    Tuple,
    List,
}

/// How the function is called and what it returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub params: Vec<Param>,
    pub output_kind: OutputKind,
    /// Array inputs (by input number) that `fn` updates in place: the caller's array holds
    /// the update after the call (mlx-lm's KV cache buffers, `a[i:j] = v`).
    #[serde(default)]
    pub updated: Vec<usize>,
    /// `fn`'s declared parameters, which the written module's public functions take; empty
    /// where unknown (they then take the traced parameters).
    #[serde(default)]
    pub fn_params: Vec<FnParam>,
    /// Array inputs (by input number) that `fn` rewrites whole (`a[...] = v`, which MLX traces
    /// as no operation on `a`): the program's last outputs, one each in this order, are their
    /// values when `fn` returns, which the module writes into the caller's arrays.
    #[serde(default)]
    pub written: Vec<usize>,
}

impl Signature {
    /// A signature of no parameters returning `output_kind`, updating nothing: a program
    /// built by hand (a rule's, a test's) rather than traced.
    pub fn returning(output_kind: OutputKind) -> Signature {
        Signature { params: vec![], output_kind, updated: vec![], fn_params: vec![], written: vec![] }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Program {
    pub values: Vec<Value>,
    /// Array inputs in parameter order.
    pub inputs: Vec<ValueId>,
    pub constants: Vec<Constant>,
    /// In topological order.
    pub nodes: Vec<Node>,
    pub outputs: Vec<ValueId>,
    pub signature: Signature,
}

impl Program {
    /// The outputs `fn` returns: all but the values of the inputs it rewrites whole
    /// ([`Signature::written`]).
    pub fn returned(&self) -> &[ValueId] {
        &self.outputs[..self.outputs.len() - self.signature.written.len()]
    }

    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id]
    }

    /// A new value of the program (made by a node the caller adds).
    pub fn push_value(&mut self, v: Value) -> ValueId {
        self.values.push(v);
        self.values.len() - 1
    }

    pub fn constant(&self, id: ValueId) -> Option<&Constant> {
        self.constants.iter().find(|c| c.value == id)
    }

    /// The keys of its tensor constants (whose bytes stay with the worker), in order.
    pub fn tensor_keys(&self) -> impl Iterator<Item = &str> {
        self.constants.iter().filter_map(|c| match &c.data {
            ConstData::Tensor { key } => Some(key.as_str()),
            ConstData::Scalar { .. } => None,
        })
    }

    /// Names of ops in first-seen order, with counts.
    pub fn op_counts(&self) -> Vec<(crate::Op, usize)> {
        let mut out: Vec<(crate::Op, usize)> = vec![];
        for n in &self.nodes {
            match out.iter_mut().find(|(o, _)| *o == n.op) {
                Some((_, c)) => *c += 1,
                None => out.push((n.op, 1)),
            }
        }
        out
    }
}

/// Programs with the input shapes each may run on: one general program, or
/// one per traced size where the traces could not be aligned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub variants: Vec<(crate::Guard, Program)>,
    /// Why the sizes stay apart, if they do.
    pub per_size_because: Option<String>,
}

impl Plan {
    /// Applies `f` to every variant's program; returns the sum of what `f` returns.
    pub fn map(&mut self, mut f: impl FnMut(&mut Program) -> usize) -> usize {
        self.variants.iter_mut().map(|(_, p)| f(p)).sum()
    }

    pub fn node_count(&self) -> usize {
        self.variants.iter().map(|(_, p)| p.nodes.len()).sum()
    }
}
