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
pub mod quantized;
pub mod reference;
pub mod scan;
pub mod solve;

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
    pub body: Body,
    pub target: Target,
    pub tuned: Vec<Tuned>,
}

/// What a generated kernel computes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Body {
    /// An elementwise chain or row reduction of the kernel IR ([`ir`]).
    Rows(Kernel),
    /// Gathered quantized products ([`quantized`]).
    Quantized(quantized::Quantized),
    /// Unit lower-triangular solves ([`solve`]).
    Solve(solve::Solve),
    /// Recurrences, a warp's threads per state line ([`scan`]).
    Scan(scan::Scan),
}

/// The launch picked on the device for one shape (`rows` by `n` outputs).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tuned {
    pub rows: i64,
    pub n: i64,
    pub picked: Picked,
}

/// What a tuned launch sets: a row kernel's parameters, or a quantized product's layout.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Picked {
    Rows(Params),
    Quantized(quantized::Layout),
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

    /// The row kernel, where the call is one.
    pub fn rows(&self) -> Option<&Kernel> {
        match &self.body {
            Body::Rows(k) => Some(k),
            Body::Quantized(_) | Body::Solve(_) | Body::Scan(_) => None,
        }
    }

    pub fn name(&self) -> &str {
        match &self.body {
            Body::Rows(k) => &k.name,
            Body::Quantized(q) => &q.name,
            Body::Solve(s) => &s.name,
            Body::Scan(s) => &s.name,
        }
    }

    /// The kernel's source for `target` (for the plain-MLX form, its Python).
    pub fn source(&self, target: Target) -> String {
        match (&self.body, target) {
            (Body::Rows(k), Target::Cuda) => cuda::source(k),
            (Body::Rows(k), Target::Metal) => metal::source(k),
            (Body::Rows(k), Target::Mlx) => reference::launcher(k, 0),
            (Body::Quantized(q), Target::Cuda) => quantized::cuda_source(q),
            (Body::Quantized(q), Target::Metal) => quantized::metal_source(q),
            (Body::Quantized(q), Target::Mlx) => quantized::mlx_launcher(q, 0),
            (Body::Solve(s), Target::Cuda) => solve::cuda_source(s),
            (Body::Solve(s), Target::Metal) => solve::metal_source(s),
            (Body::Solve(s), Target::Mlx) => solve::mlx_launcher(s, 0),
            (Body::Scan(s), Target::Cuda) => scan::cuda_source(s),
            (Body::Scan(s), Target::Metal) => scan::metal_source(s),
            (Body::Scan(s), Target::Mlx) => scan::mlx_launcher(s, 0),
        }
    }

    /// Python defining `_k{index}` for the call's target (see [`launch::launcher`],
    /// [`quantized::launcher`], [`solve::launcher`]).
    pub fn launcher(&self, index: usize) -> String {
        match &self.body {
            Body::Rows(k) => launch::launcher(k, index, self.target, &self.table()),
            Body::Quantized(q) => quantized::launcher(q, index, self.target, &self.layouts()),
            Body::Solve(s) => solve::launcher(s, index, self.target),
            Body::Scan(s) => scan::launcher(s, index, self.target),
        }
    }

    /// A row kernel's tuned parameters by `(rows, n)`.
    pub fn table(&self) -> std::collections::BTreeMap<(i64, i64), Params> {
        let rows = |t: &Tuned| match t.picked {
            Picked::Rows(p) => Some(((t.rows, t.n), p)),
            Picked::Quantized(_) => None,
        };
        self.tuned.iter().filter_map(rows).collect()
    }

    /// A quantized product's tuned layouts by rows.
    pub fn layouts(&self) -> std::collections::BTreeMap<i64, quantized::Layout> {
        let layout = |t: &Tuned| match t.picked {
            Picked::Quantized(l) => Some((t.rows, l)),
            Picked::Rows(_) => None,
        };
        self.tuned.iter().filter_map(layout).collect()
    }
}
