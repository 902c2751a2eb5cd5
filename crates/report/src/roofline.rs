//! The roofline: the least time a function can take on a device, from the bytes it must
//! move (each input and constant read once, each output written once) over the measured
//! copy bandwidth, and the matrix-product flops it must do over the measured matmul rate,
//! plus the fixed time of one kernel: a copy of those bytes takes no less.

use serde::Serialize;
use superopt_ir::{Op, Program};

/// The device's two ceilings, as the worker measured them.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Ceilings {
    pub bytes_per_s: f64,
    pub flops_per_s: f64,
    /// What one kernel takes beyond its bytes (a copy's time at zero bytes).
    pub fixed_s: f64,
}

/// The floor of one size.
#[derive(Clone, Debug, Serialize)]
pub struct Floor {
    pub size: superopt_bench::Size,
    pub bytes: f64,
    pub flops: f64,
    pub seconds: f64,
    /// The floor over the original's median time.
    pub original: Option<f64>,
}

fn bytes(v: &superopt_ir::Value) -> f64 {
    v.numel() as f64 * v.dtype.size_bytes() as f64
}

/// Matrix-product flops of one node (elementwise work is not counted: it hides under
/// the bytes on every device this targets).
fn flops(p: &Program, n: &superopt_ir::Node) -> f64 {
    let out: f64 = n.outputs.first().map_or(0.0, |o| p.value(*o).numel() as f64);
    let last = |i: usize| n.inputs.get(i).and_then(|v| p.value(*v).shape.last().copied()).unwrap_or(0) as f64;
    match n.op {
        Op::Matmul | Op::AddMM | Op::QuantizedMatmul | Op::GatherMM | Op::GatherQMM => 2.0 * out * last(0),
        Op::ScaledDotProductAttention => {
            let k = n.inputs.get(1).map(|v| p.value(*v).shape.clone()).unwrap_or_default();
            let keys = if k.len() >= 2 { k[k.len() - 2] as f64 } else { 0.0 };
            4.0 * out * keys
        }
        _ => 0.0,
    }
}

/// The floor of `p` (a program traced at one size) on a device with `c`.
pub fn floor(size: superopt_bench::Size, p: &Program, c: Ceilings) -> Floor {
    let tensors = p
        .constants
        .iter()
        .filter(|k| matches!(k.data, superopt_ir::ConstData::Tensor { .. }))
        .map(|k| bytes(p.value(k.value)));
    let moved: f64 = p.inputs.iter().chain(&p.outputs).map(|v| bytes(p.value(*v))).chain(tensors).sum();
    let work: f64 = p.nodes.iter().map(|n| flops(p, n)).sum();
    let seconds = c.fixed_s + (moved / c.bytes_per_s).max(work / c.flops_per_s);
    Floor { size, bytes: moved, flops: work, seconds, original: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `exp` of a 1024 x 1024 float32 array: 4 MiB read, 4 MiB written.
    fn exp_program() -> Program {
        let text = r#"{"params": [{"name": "x", "kind": "array", "array": "A"}], "output_kind": "array",
            "inputs": [["A", [1024, 1024], "float32"]], "outputs": [["B", [1024, 1024], "float32"]], "constants": [],
            "nodes": [{"op": "Exp", "args": [], "inputs": [["A", [1024, 1024], "float32"]],
                       "outputs": [["B", [1024, 1024], "float32"]]}]}"#;
        superopt_ir::import::import_trace(&serde_json::from_str(text).unwrap()).unwrap()
    }

    #[test]
    fn the_floor_is_the_bytes_over_the_bandwidth_plus_one_kernel() {
        let c = Ceilings { bytes_per_s: 1e12, flops_per_s: 1e15, fixed_s: 5e-6 };
        let f = floor(superopt_bench::Size::Typical, &exp_program(), c);
        assert_eq!(f.bytes, 8.0 * 1024.0 * 1024.0);
        assert!((f.seconds - (5e-6 + f.bytes / 1e12)).abs() < 1e-12, "{}", f.seconds);
        let bare = floor(superopt_bench::Size::Typical, &exp_program(), Ceilings { fixed_s: 0.0, ..c });
        assert!(bare.seconds < f.seconds);
    }
}
