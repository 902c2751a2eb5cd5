//! The MLX primitives the IR knows, by the name `mx.export_function` gives them.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One output element from the same element of each input.
    Unary,
    Binary,
    Ternary,
    /// Reductions, scans, sorts, softmax: read whole rows.
    Reduce,
    /// Shape changes and copies: no arithmetic.
    Layout,
    /// Matrix products (possibly quantized).
    Matmul,
    /// Values made from nothing but arguments (arange, random bits).
    Source,
    /// Fused `mx.fast` kernels (exported as one node on GPU backends).
    Fast,
    /// A kernel superopt generated (`superopt-kernel`); never traced, only lowered to.
    Kernel,
}

const UNARY: &[&str] = &[
    "Abs",
    "ArcCos",
    "ArcCosh",
    "ArcSin",
    "ArcSinh",
    "ArcTan",
    "ArcTanh",
    "AsType",
    "BitwiseInvert",
    "Ceil",
    "Conjugate",
    "Cos",
    "Cosh",
    "Erf",
    "ErfInv",
    "Exp",
    "Expm1",
    "Floor",
    "Imag",
    "Log",
    "Log1p",
    "LogicalNot",
    "Negative",
    "Real",
    "Round",
    "Sigmoid",
    "Sign",
    "Sin",
    "Sinh",
    "Sqrt",
    "Square",
    "StopGradient",
    "Tan",
    "Tanh",
];
const BINARY: &[&str] = &[
    "Add",
    "ArcTan2",
    "BitwiseBinary",
    "Divide",
    "Equal",
    "Greater",
    "GreaterEqual",
    "Less",
    "LessEqual",
    "LogAddExp",
    "LogicalAnd",
    "LogicalOr",
    "Maximum",
    "Minimum",
    "Multiply",
    "NotEqual",
    "Power",
    "Remainder",
    "Subtract",
    "DivMod",
    "FloorDivide",
];
const TERNARY: &[&str] = &["Select"];
const REDUCE: &[&str] =
    &["Reduce", "ArgReduce", "Scan", "Softmax", "LogSumExp", "Sort", "ArgSort", "Partition", "ArgPartition"];
const LAYOUT: &[&str] = &[
    "Broadcast",
    "Concatenate",
    "Copy",
    "ExpandDims",
    "Flatten",
    "Gather",
    "GatherAxis",
    "Pad",
    "Reshape",
    "Slice",
    "SliceUpdate",
    "Split",
    "Squeeze",
    "Transpose",
    "Unflatten",
    "Scatter",
    "ScatterAxis",
    "AsStrided",
];
const MATMUL: &[&str] = &["Matmul", "AddMM", "QuantizedMatmul", "GatherMM", "GatherQMM"];
const SOURCE: &[&str] = &["Arange", "RandomBits", "Full"];
const FAST: &[&str] = &["RMSNorm", "LayerNorm", "RoPE", "ScaledDotProductAttention"];
const KERNEL: &[&str] = &["Kernel"];

/// The kind of a known primitive; `None` for one the IR does not know.
pub fn kind(op: &str) -> Option<Kind> {
    let tables: [(&[&str], Kind); 9] = [
        (UNARY, Kind::Unary),
        (BINARY, Kind::Binary),
        (TERNARY, Kind::Ternary),
        (REDUCE, Kind::Reduce),
        (LAYOUT, Kind::Layout),
        (MATMUL, Kind::Matmul),
        (SOURCE, Kind::Source),
        (FAST, Kind::Fast),
        (KERNEL, Kind::Kernel),
    ];
    tables.iter().find(|(names, _)| names.contains(&op)).map(|(_, k)| *k)
}

pub fn is_known(op: &str) -> bool {
    kind(op).is_some()
}

/// Every known primitive name.
pub fn known() -> impl Iterator<Item = &'static str> {
    [UNARY, BINARY, TERNARY, REDUCE, LAYOUT, MATMUL, SOURCE, FAST, KERNEL].into_iter().flatten().copied()
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_unique() {
        let mut all: Vec<_> = super::known().collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }
}
