//! The e-graph's language: MLX primitives over e-classes, and the analysis that
//! gives every e-class its shapes, dtypes, symbolic dims and constness.
//!
//! An `Op` node's first child is an `Args` leaf when the primitive has arguments;
//! patterns say so: `(Transpose ?perm ?x)`, `(Multiply ?a ?b)`. Patterns name
//! primitives as MLX's export does; a name the IR does not know is an error.

use super::shape;
use egg::{DidMerge, Id, Language};
use std::collections::HashMap;
use superopt_ir::{Arg, ConstData, Dim, DimTerm, Op, Value};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mlx {
    /// The program's array input at this position.
    Input(u32),
    /// An entry of [`Tables::consts`].
    Const(u32),
    /// An entry of [`Tables::args`]: a primitive's arguments.
    Args(u32),
    /// A primitive applied to its (args and) inputs.
    Op(Op, Vec<Id>),
    /// One output of a primitive with several: `(Get ?index-args ?node)`.
    Get(Vec<Id>),
}

impl Mlx {
    /// The primitive, for an `Op` node.
    pub fn op(&self) -> Option<Op> {
        match self {
            Mlx::Op(o, _) => Some(*o),
            _ => None,
        }
    }
}

impl Language for Mlx {
    type Discriminant = (u8, Option<Op>, u32);

    fn discriminant(&self) -> Self::Discriminant {
        match self {
            Mlx::Input(i) => (0, None, *i),
            Mlx::Const(i) => (1, None, *i),
            Mlx::Args(i) => (2, None, *i),
            Mlx::Op(o, c) => (3, Some(*o), c.len() as u32),
            Mlx::Get(c) => (4, None, c.len() as u32),
        }
    }

    fn matches(&self, other: &Self) -> bool {
        self.discriminant() == other.discriminant()
    }

    fn children(&self) -> &[Id] {
        match self {
            Mlx::Op(_, c) | Mlx::Get(c) => c,
            _ => &[],
        }
    }

    fn children_mut(&mut self) -> &mut [Id] {
        match self {
            Mlx::Op(_, c) | Mlx::Get(c) => c,
            _ => &mut [],
        }
    }
}

impl std::fmt::Display for Mlx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mlx::Input(i) => write!(f, "in{i}"),
            Mlx::Const(i) => write!(f, "const{i}"),
            Mlx::Args(i) => write!(f, "args{i}"),
            Mlx::Op(o, _) => write!(f, "{o}"),
            Mlx::Get(_) => f.write_str("Get"),
        }
    }
}

impl egg::FromOp for Mlx {
    type Error = String;

    /// Patterns name primitives only; leaves come from the program.
    fn from_op(op: &str, children: Vec<Id>) -> Result<Self, Self::Error> {
        if children.is_empty() {
            return Err(format!("pattern leaf {op:?}: use a ?variable"));
        }
        if op == "Get" {
            return Ok(Mlx::Get(children));
        }
        let prim = Op::parse(op).ok_or_else(|| format!("{op} is no primitive the IR knows"))?;
        Ok(Mlx::Op(prim, children))
    }
}

/// A constant of the e-graph: a traced one, or one a rule made.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstEntry {
    pub value: Value,
    pub data: ConstData,
}

/// What leaves refer to, interned so equal ones share an e-class.
#[derive(Default, Debug)]
pub struct Tables {
    pub args: Vec<Vec<Arg>>,
    args_index: HashMap<String, u32>,
    pub consts: Vec<ConstEntry>,
    consts_index: HashMap<String, u32>,
    /// Reference-size value of each scalar constant, by index.
    pub scalars: HashMap<u32, f64>,
    /// Input dims that vary across sizes, each mapped to its tie representative.
    pub varying: HashMap<DimTerm, DimTerm>,
    /// The array inputs' values, by position.
    pub inputs: Vec<Value>,
}

impl Tables {
    pub fn intern_args(&mut self, args: &[Arg]) -> u32 {
        let key = serde_json::to_string(args).expect("args serialize");
        if let Some(i) = self.args_index.get(&key) {
            return *i;
        }
        let i = self.args.len() as u32;
        self.args.push(args.to_vec());
        self.args_index.insert(key, i);
        i
    }

    pub fn intern_const(&mut self, c: ConstEntry, scalar: Option<f64>) -> u32 {
        let key = format!("{:?}|{}", c.value, serde_json::to_string(&c.data).expect("const serializes"));
        if let Some(i) = self.consts_index.get(&key) {
            return *i;
        }
        let i = self.consts.len() as u32;
        self.consts.push(c);
        self.consts_index.insert(key, i);
        if let Some(v) = scalar {
            self.scalars.insert(i, v);
        }
        i
    }

    /// The symbolic size of axis `axis` of input `input`.
    pub fn input_dims(&self, input: usize, axis: usize) -> Dim {
        let t = DimTerm { input, axis };
        match self.varying.get(&t) {
            Some(rep) => Dim { terms: vec![*rep], num: 1, den: 1, offset: 0 },
            None => Dim::constant(self.inputs[input].shape[axis]),
        }
    }

    /// `d` with tied input dims written alike, so equal sizes compare equal.
    pub fn canonical(&self, d: &Dim) -> Dim {
        let mut terms: Vec<DimTerm> = d.terms.iter().map(|t| *self.varying.get(t).unwrap_or(t)).collect();
        terms.sort();
        Dim { terms, ..d.clone() }
    }

    /// Input shapes at the reference size, for evaluating dims.
    pub fn reference_shapes(&self) -> Vec<Vec<i64>> {
        self.inputs.iter().map(|v| v.shape.clone()).collect()
    }
}

/// What is known of an e-class.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Data {
    /// One per output (several for Split, DivMod); empty where unknown or for `Args`.
    pub values: Vec<Value>,
    /// Symbolic shape of a single-output class, where it can be derived.
    pub dims: Option<Vec<Dim>>,
    /// Depends on no input.
    pub constant: bool,
    /// Every element equals this (scalar constants and their broadcasts).
    pub scalar: Option<f64>,
    /// The class is an `Args` leaf.
    pub args: Option<u32>,
}

impl Data {
    /// The single output's value, if known.
    pub fn value(&self) -> Option<&Value> {
        match self.values.as_slice() {
            [v] => Some(v),
            _ => None,
        }
    }
}

/// Where an e-node came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The trace: the value it computes (`%N`, as `superopt trace` prints it).
    Traced(usize),
    /// The rule of this name added it.
    Rule(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Origin::Traced(v) => write!(f, "%{v}"),
            Origin::Rule(r) => f.write_str(r),
        }
    }
}

/// The analysis: [`Tables`] plus shape inference on every new e-node.
#[derive(Default, Debug)]
pub struct Analysis {
    pub tables: Tables,
    /// Where each e-node came from.
    pub origins: HashMap<Mlx, Origin>,
    /// Every merge a rule made: (matched class, replacement, rule).
    pub unions: Vec<(Id, Id, String)>,
    /// The device's float32 matmuls round to TF32 ([`super::cost::Device::matmul_tf32`]).
    pub matmul_tf32: bool,
}

pub type EGraph = egg::EGraph<Mlx, Analysis>;

impl egg::Analysis<Mlx> for Analysis {
    type Data = Data;

    fn make(egraph: &mut EGraph, enode: &Mlx) -> Data {
        shape::infer(egraph, enode)
    }

    fn merge(&mut self, a: &mut Data, b: Data) -> DidMerge {
        let before = a.clone();
        if a.values.is_empty() && !b.values.is_empty() {
            a.values = b.values.clone();
        }
        if a.dims.is_none() && b.dims.is_some() {
            a.dims = b.dims.clone();
        }
        a.constant |= b.constant;
        if a.scalar.is_none() {
            a.scalar = b.scalar;
        }
        if a.args.is_none() {
            a.args = b.args;
        }
        DidMerge(*a != before, *a != b)
    }
}

/// The `Args` of e-class `id`, if it is an args leaf.
pub fn args_of(egraph: &EGraph, id: Id) -> Option<&[Arg]> {
    egraph[id].data.args.map(|i| egraph.analysis.tables.args[i as usize].as_slice())
}

/// Adds an `Args` leaf.
pub fn add_args(egraph: &mut EGraph, args: &[Arg]) -> Id {
    let i = egraph.analysis.tables.intern_args(args);
    egraph.add(Mlx::Args(i))
}
