//! The cost model: bytes moved, flops, and one launch per primitive. It only
//! prunes and orders candidates; the final choice is always timed on the device.

use super::lang::{EGraph, Mlx};
use super::shape::split_args;
use serde::{Deserialize, Serialize};
use superopt_ir::ops::Kind;
use superopt_ir::Op;

/// What the device does per second, and what one primitive costs to launch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub bytes_per_s: f64,
    pub flops_per_s: f64,
    pub launch_s: f64,
    /// What a kernel takes beyond moving its bytes at `bytes_per_s` (starting, filling
    /// and draining the device), from copies of two sizes: the roofline's fixed term.
    #[serde(default)]
    pub fixed_s: f64,
    /// Float32 matmuls round their inputs to TF32 (10-bit mantissas; MLX's CUDA default):
    /// a product made a matmul is then less accurate than the float32 sum it replaces.
    #[serde(default)]
    pub matmul_tf32: bool,
}

impl Default for Device {
    /// A modest CPU, used until the worker has measured the device at hand.
    fn default() -> Self {
        Device { bytes_per_s: 10e9, flops_per_s: 50e9, launch_s: 5e-6, fixed_s: 0.0, matmul_tf32: false }
    }
}

/// How the candidate will be run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Eager,
    /// Inside `mx.compile`: elementwise chains fuse into one pass.
    Compiled,
}

fn bytes(v: &superopt_ir::Value) -> f64 {
    v.numel() as f64 * v.dtype.size_bytes() as f64
}

/// Seconds one e-node takes, given its class and children's values.
pub fn node_cost(g: &EGraph, class: egg::Id, node: &Mlx, dev: &Device, mode: Mode) -> f64 {
    let Mlx::Op(op, children) = node else { return 0.0 };
    let op = *op;
    let out = &g[class].data.values;
    if out.is_empty() {
        return f64::INFINITY;
    }
    let (_, inputs) = split_args(g, children);
    let in_vals: Vec<&superopt_ir::Value> = inputs.iter().filter_map(|c| g[*c].data.value()).collect();
    let out_bytes: f64 = out.iter().map(bytes).sum();
    let in_bytes: f64 = in_vals.iter().map(|v| bytes(v)).sum();
    let out_elems = out.iter().map(|v| v.numel() as f64).sum::<f64>();
    let pass = |flops: f64| dev.launch_s + (in_bytes + out_bytes) / dev.bytes_per_s + flops / dev.flops_per_s;
    match (op, op.kind()) {
        // Views: no data moves until something reads them.
        (Op::Transpose | Op::Broadcast | Op::ExpandDims | Op::Squeeze | Op::Slice, _) => dev.launch_s * 0.1,
        // A view when its input is contiguous, a copy otherwise: half a copy on average.
        (Op::Reshape | Op::Flatten | Op::Unflatten, _) => dev.launch_s * 0.1 + 0.5 * out_bytes / dev.bytes_per_s,
        (Op::Matmul, _) => {
            let k = in_vals.first().and_then(|v| v.shape.last()).copied().unwrap_or(1) as f64;
            pass(2.0 * out_elems * k)
        }
        (Op::ScaledDotProductAttention, _) => {
            let (q, k) = (in_vals[0], in_vals[1]);
            let s = k.shape[k.shape.len() - 2] as f64;
            pass(4.0 * q.numel() as f64 * s)
        }
        (_, Kind::Unary | Kind::Binary | Kind::Ternary) if mode == Mode::Compiled => {
            // Fused into its neighbours: its flops, and a share of one pass.
            0.1 * dev.launch_s + out_elems * weight(op) / dev.flops_per_s + 0.25 * out_bytes / dev.bytes_per_s
        }
        (_, Kind::Unary | Kind::Binary | Kind::Ternary) => pass(out_elems * weight(op)),
        (_, Kind::Fast) => pass(5.0 * out_elems),
        _ => pass(in_vals.iter().map(|v| v.numel() as f64).sum::<f64>().max(out_elems)),
    }
}

/// Relative flops of one element of an elementwise primitive.
fn weight(op: Op) -> f64 {
    match op {
        Op::Exp
        | Op::Log
        | Op::Erf
        | Op::Tanh
        | Op::Sigmoid
        | Op::Sin
        | Op::Cos
        | Op::Power
        | Op::ErfInv
        | Op::Expm1
        | Op::Log1p => 8.0,
        Op::Sqrt | Op::Divide => 4.0,
        _ => 1.0,
    }
}
