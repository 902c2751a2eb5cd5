//! A kernel as plain MLX operations on whole arrays: what its GPU code must compute, in
//! the same float32 arithmetic. It is not fast; it lets the kernel IR and the lowering be
//! verified where no GPU is (`Target::Mlx`, the tests on the CPU).

use crate::ir::{Binary, Kernel, Layout, Op, Reduce, Unary};
use std::fmt::Write;
use superopt_ir::print::py_float;

pub(crate) fn unary(u: Unary, a: &str) -> String {
    let f = match u {
        Unary::Neg => return format!("-{a}"),
        Unary::Exp => "mx.exp",
        Unary::Log => "mx.log",
        Unary::Sqrt => "mx.sqrt",
        Unary::Rsqrt => "mx.rsqrt",
        Unary::Abs => "mx.abs",
        Unary::Square => "mx.square",
        Unary::Sigmoid => "mx.sigmoid",
        Unary::Tanh => "mx.tanh",
        Unary::Erf => "mx.erf",
        Unary::Sin => "mx.sin",
        Unary::Cos => "mx.cos",
    };
    format!("{f}({a})")
}

pub(crate) fn binary(b: Binary, x: &str, y: &str) -> String {
    let cmp = |f: &str| format!("{f}({x}, {y}).astype(mx.float32)");
    match b {
        Binary::Add => format!("{x} + {y}"),
        Binary::Sub => format!("{x} - {y}"),
        Binary::Mul => format!("{x} * {y}"),
        Binary::Div => format!("{x} / {y}"),
        Binary::Max => format!("mx.maximum({x}, {y})"),
        Binary::Min => format!("mx.minimum({x}, {y})"),
        Binary::Pow => format!("mx.power({x}, {y})"),
        Binary::Gt => cmp("mx.greater"),
        Binary::Ge => cmp("mx.greater_equal"),
        Binary::Lt => cmp("mx.less"),
        Binary::Le => cmp("mx.less_equal"),
        Binary::Eq => cmp("mx.equal"),
        Binary::Ne => cmp("mx.not_equal"),
    }
}

/// `def _k{index}(shape, *inputs, params=None)` computing `k` with MLX operations.
pub fn launcher(k: &Kernel, index: usize) -> String {
    let ins: Vec<String> = k.inputs.iter().map(|o| o.name.clone()).collect();
    let mut s = format!("def _k{index}(shape, {}, params=None):\n", ins.join(", "));
    writeln!(s, "    \"\"\"Kernel {} as plain MLX operations (its meaning; no GPU code).\"\"\"", k.name).unwrap();
    writeln!(
        s,
        "    if _LAUNCHES is not None:\n        _LAUNCHES.append(({index}, tuple(shape), [{}]))",
        ins.iter().map(|n| format!("({n}.shape, {n}.dtype)")).collect::<Vec<_>>().join(", ")
    )
    .unwrap();
    for (v, inst) in k.insts.iter().enumerate() {
        let a = |i: usize| format!("v{}", inst.args[i]);
        let rhs = match inst.op {
            Op::Input(i) => format!("{}.astype(mx.float32)", k.inputs[i].name),
            Op::Const(c) => format!("mx.array({}, dtype=mx.float32)", py_float(c)),
            Op::Len => "mx.array(float(shape[-1]), dtype=mx.float32)".into(),
            Op::Unary(u) => unary(u, &a(0)),
            Op::Binary(b) => binary(b, &a(0), &a(1)),
            Op::Select => format!("mx.where({} != 0, {}, {})", a(0), a(1), a(2)),
            Op::Reduce(Reduce::Sum) => format!("mx.sum({}, axis=-1, keepdims=True)", a(0)),
            Op::Reduce(Reduce::Max) => format!("mx.max({}, axis=-1, keepdims=True)", a(0)),
            Op::Reduce(Reduce::Min) => format!("mx.min({}, axis=-1, keepdims=True)", a(0)),
            Op::Cast(d) => format!("{}.astype(mx.{}).astype(mx.float32)", a(0), d.name()),
        };
        writeln!(s, "    v{v} = {rhs}").unwrap();
    }
    let outs: Vec<String> = k
        .outputs
        .iter()
        .map(|o| {
            let shape = if o.layout == Layout::Row { "tuple(shape[:-1]) + (1,)" } else { "tuple(shape)" };
            format!("mx.broadcast_to(v{}, {shape}).astype(mx.{})", o.value, o.dtype.name())
        })
        .collect();
    writeln!(s, "    return {}\n\n", outs.join(", ")).unwrap();
    s
}
