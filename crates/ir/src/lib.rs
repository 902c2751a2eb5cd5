//! The IR: a typed graph of MLX primitives.
//!
//! A [`Program`] is what `mx.export_function` saw: inputs, constants, primitive
//! nodes in topological order, outputs. Every value carries its shape and dtype.
//! Integer arguments are [`Dim`]s so that one program can stand for all sizes.

pub mod batch;
pub mod dim;
pub mod dtype;
pub mod guard;
pub mod import;
pub mod ops;
pub mod passes;
pub mod print;
pub mod program;

pub use dim::{Dim, DimTerm};
pub use dtype::Dtype;
pub use guard::{Guard, InputGuard, Span};
pub use import::{import_trace, ImportError, TraceEvents};
pub use ops::{Op, ReduceKind};
pub use program::{
    Arg, ConstData, Constant, FnDefault, FnParam, Node, OutputKind, Param, ParamKind, Plan, Program, ScalarExpr,
    Signature, Value, ValueId,
};
