//! The roofline: the least time a function can take on a device, from the bytes it must
//! move (each input and constant read once, each output written once) over the measured
//! copy bandwidth, and the matrix-product flops it must do over the measured matmul rate,
//! plus the fixed time of one kernel: a copy of those bytes takes no less. An array that is
//! only gathered from (experts' weights, table rows) counts the slices a call can select.

use serde::Serialize;
use superopt_ir::{Op, Program, ValueId};

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
        // Each output sums a window of the weight's [kernel..., C_in / groups] values.
        Op::Convolution => {
            let w = n.inputs.get(1).map(|v| p.value(*v).shape.clone()).unwrap_or_default();
            let per_output = w.iter().skip(1).product::<i64>() as f64;
            2.0 * out * per_output
        }
        Op::ScaledDotProductAttention => {
            let k = n.inputs.get(1).map(|v| p.value(*v).shape.clone()).unwrap_or_default();
            let keys = if k.len() >= 2 { k[k.len() - 2] as f64 } else { 0.0 };
            4.0 * out * keys
        }
        _ => 0.0,
    }
}

/// Where a node gathers slices of its `i`-th input: the input holding the indices, and how
/// many leading axes the indices select over. `None` where it reads the input whole.
fn gathered_by(p: &Program, n: &superopt_ir::Node, i: usize) -> Option<(ValueId, usize)> {
    let last = n.inputs.len();
    let batch = |v: ValueId| p.value(v).shape.len().checked_sub(2);
    match n.op {
        // x, w, scales, [biases], lhs_indices, rhs_indices
        Op::GatherQMM if i == 0 => Some((n.inputs[last - 2], batch(n.inputs[0])?)),
        Op::GatherQMM if i + 2 < last => Some((n.inputs[last - 1], batch(n.inputs[1])?)),
        // a, b, lhs_indices, rhs_indices
        Op::GatherMM if i < 2 && last == 4 => Some((n.inputs[2 + i], batch(n.inputs[i])?)),
        // x[indices] along axis 0, one whole row per index.
        Op::Gather if i == 0 && last == 2 => {
            let axes = n.args.first()?.list()?;
            let sizes: Vec<i64> = n.args.get(1)?.list()?.iter().map(|a| a.int()?.as_const()).collect::<Option<_>>()?;
            let shape = &p.value(n.inputs[0]).shape;
            let rows = sizes.first() == Some(&1) && sizes.get(1..) == shape.get(1..);
            (axes.len() == 1 && axes[0].int()?.as_const() == Some(0) && rows).then_some((n.inputs[1], 1))
        }
        _ => None,
    }
}

/// The bytes of `v` a call must read: all of them, unless every use gathers slices of it
/// over the same leading axes; then at most one slice per index element, at most all.
fn read_bytes(p: &Program, v: ValueId) -> f64 {
    let whole = bytes(p.value(v));
    if p.outputs.contains(&v) {
        return whole;
    }
    let mut indices: Vec<ValueId> = vec![];
    let mut axes = None;
    for n in &p.nodes {
        for (i, _) in n.inputs.iter().enumerate().filter(|(_, u)| **u == v) {
            match gathered_by(p, n, i) {
                Some((index, k)) if axes.is_none_or(|a| a == k) => {
                    axes = Some(k);
                    indices.extend(Some(index).filter(|x| !indices.contains(x)));
                }
                _ => return whole,
            }
        }
    }
    let Some(k) = axes else { return whole };
    let slices: i64 = p.value(v).shape[..k].iter().product();
    let selected: i64 = indices.iter().map(|x| p.value(*x).numel()).sum();
    whole * selected.min(slices) as f64 / slices.max(1) as f64
}

/// The floor of `p` (a program traced at one size) on a device with `c`.
pub fn floor(size: superopt_bench::Size, p: &Program, c: Ceilings) -> Floor {
    let tensors = p
        .constants
        .iter()
        .filter(|k| matches!(k.data, superopt_ir::ConstData::Tensor { .. }))
        .map(|k| read_bytes(p, k.value));
    let inputs = p.inputs.iter().map(|v| read_bytes(p, *v));
    let moved: f64 = p.outputs.iter().map(|v| bytes(p.value(*v))).chain(inputs).chain(tensors).sum();
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

    /// x [1, 1, 64] against 4-bit experts w [16, 32, 8] (scales, biases [16, 32, 1]) at the
    /// `selected` expert indices; `whole` adds a node that reads w whole.
    fn experts(selected: i64, whole: bool) -> Program {
        use serde_json::json;
        let (x, w, s, b) = (
            json!(["X", [1, 1, 64], "float32"]),
            json!(["W", [16, 32, 8], "uint32"]),
            json!(["S", [16, 32, 1], "float32"]),
            json!(["B", [16, 32, 1], "float32"]),
        );
        let (l, i) = (json!(["L", [selected], "uint32"]), json!(["I", [selected], "uint32"]));
        let y = json!(["Y", [selected, 1, 32], "float32"]);
        let constant =
            |a: &serde_json::Value, key: &str| json!({"name": a[0], "shape": a[1], "dtype": a[2], "key": key});
        let mut nodes = vec![json!({"op": "GatherQMM", "args": [64, 4, 0, true, false, false],
            "inputs": [x, w, s, b, l, i], "outputs": [y]})];
        if whole {
            nodes.push(json!({"op": "Abs", "args": [], "inputs": [w], "outputs": [["Z", [16, 32, 8], "uint32"]]}));
        }
        let text = json!({
            "params": [{"name": "x", "kind": "array", "array": "X"}, {"name": "i", "kind": "array", "array": "I"}],
            "output_kind": "array", "inputs": [x, i], "outputs": [y],
            "constants": [constant(&w, "w"), constant(&s, "s"), constant(&b, "b"), constant(&l, "l")],
            "nodes": nodes,
        });
        superopt_ir::import::import_trace(&serde_json::from_value(text).unwrap()).unwrap()
    }

    #[test]
    fn gathered_experts_count_the_ones_a_call_can_select() {
        let c = Ceilings { bytes_per_s: 1e12, flops_per_s: 1e15, fixed_s: 0.0 };
        let weights = 16.0 * 32.0 * (8.0 * 4.0 + 4.0 + 4.0);
        let rest = |n: f64| 64.0 * 4.0 + n * 4.0 * 2.0 + n * 32.0 * 4.0; // x; indices twice; y
        let two = floor(superopt_bench::Size::Small, &experts(2, false), c);
        assert_eq!(two.bytes, weights * 2.0 / 16.0 + rest(2.0));
        // More indices than experts: every expert, once.
        let many = floor(superopt_bench::Size::Small, &experts(40, false), c);
        assert_eq!(many.bytes, weights + rest(40.0));
        // Near miss: w also read whole by another node.
        let read = floor(superopt_bench::Size::Small, &experts(2, true), c);
        assert_eq!(read.bytes, 16.0 * 32.0 * 32.0 + 16.0 * 32.0 * 8.0 * 2.0 / 16.0 + rest(2.0));
    }
}
