//! Custom GPU kernels: a small kernel IR ([`ir`]) for elementwise chains and row
//! reductions with fused prologue and epilogue, one emitter per GPU language
//! ([`cuda`], [`metal`], sharing [`c`]), the Python that launches them ([`launch`]),
//! the launch parameters the tuner searches ([`params`]), and the lowering of program
//! regions into kernel nodes ([`lower`]).

pub mod c;
pub mod cuda;
pub mod ir;
pub mod launch;
pub mod library;
pub mod lower;
pub mod metal;
pub mod params;
pub mod reference;

pub use ir::{Binary, Builder, Form, Kernel, Layout, Op, Reduce, Unary};
pub use params::{LaunchShape, Params};

/// Which `mx.fast` custom-kernel API a kernel is emitted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Cuda,
    Metal,
    /// Plain MLX operations: the kernels' meaning, to verify lowering where no GPU is.
    Mlx,
}

impl Target {
    pub fn parse(s: &str) -> Option<Target> {
        match s {
            "cuda" => Some(Target::Cuda),
            "metal" => Some(Target::Metal),
            "mlx" => Some(Target::Mlx),
            _ => None,
        }
    }
}

/// A kernel as one node of a program (`op: "Kernel"`): what it computes, for which
/// API, and the launch parameters picked on the device for the shapes it ran at.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Call {
    pub kernel: Kernel,
    pub target: Target,
    pub tuned: Vec<Tuned>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tuned {
    pub rows: i64,
    pub n: i64,
    pub params: Params,
}

impl Call {
    pub const OP: superopt_ir::Op = superopt_ir::Op::Kernel;

    /// The node argument that carries the call.
    pub fn to_arg(&self) -> superopt_ir::Arg {
        superopt_ir::Arg::Str(serde_json::to_string(self).expect("a call serialises"))
    }

    /// The call a `Kernel` node carries.
    pub fn of_node(node: &superopt_ir::Node) -> Option<Call> {
        match (node.op, node.args.first()) {
            (Self::OP, Some(superopt_ir::Arg::Str(json))) => serde_json::from_str(json).ok(),
            _ => None,
        }
    }

    pub fn table(&self) -> std::collections::BTreeMap<(i64, i64), Params> {
        self.tuned.iter().map(|t| ((t.rows, t.n), t.params)).collect()
    }
}
