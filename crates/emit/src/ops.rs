//! One Python expression per primitive, reproducing it bit for bit.

use crate::EmitError;
use superopt_ir::{Arg, Dim, Dtype, Node, Value};

/// What a primitive's emission needs to know beyond its node.
pub struct Ctx<'a> {
    /// Python source of each input.
    pub ins: Vec<String>,
    /// The output values (shape at the reference size, dtype).
    pub outs: Vec<&'a Value>,
    /// Renders an integer argument.
    pub dim: &'a dyn Fn(&Dim) -> String,
}

fn err(node: &Node, why: impl Into<String>) -> EmitError {
    EmitError::Op { op: node.op.clone(), why: why.into() }
}

fn arg<'n>(node: &'n Node, i: usize) -> Result<&'n Arg, EmitError> {
    node.args.get(i).ok_or_else(|| err(node, format!("missing argument {i}")))
}

fn int(node: &Node, i: usize, cx: &Ctx) -> Result<String, EmitError> {
    arg(node, i)?.int().map(|d| (cx.dim)(d)).ok_or_else(|| err(node, format!("argument {i} is not an integer")))
}

fn const_int(node: &Node, i: usize) -> Result<i64, EmitError> {
    arg(node, i)?.int().and_then(Dim::as_const).ok_or_else(|| err(node, format!("argument {i} is not a constant integer")))
}

fn ints(node: &Node, i: usize, cx: &Ctx) -> Result<Vec<String>, EmitError> {
    let items = arg(node, i)?.list().ok_or_else(|| err(node, format!("argument {i} is not a list")))?;
    items.iter().map(|a| a.int().map(|d| (cx.dim)(d)).ok_or_else(|| err(node, "a list item is not an integer"))).collect()
}

fn tuple(items: &[String]) -> String {
    match items.len() {
        1 => format!("({},)", items[0]),
        _ => format!("({})", items.join(", ")),
    }
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

fn boolean(node: &Node, i: usize) -> Result<bool, EmitError> {
    match arg(node, i)? {
        Arg::Bool(b) => Ok(*b),
        Arg::Int(d) => d.as_const().map(|v| v != 0).ok_or_else(|| err(node, "a flag is symbolic")),
        _ => Err(err(node, format!("argument {i} is not a flag"))),
    }
}

fn float(node: &Node, i: usize, cx: &Ctx) -> Result<String, EmitError> {
    match arg(node, i)? {
        Arg::Float(f) => Ok(py_float(*f)),
        Arg::Int(d) => Ok(d.as_const().map_or_else(|| format!("float({})", (cx.dim)(d)), |v| format!("{v}.0"))),
        Arg::None => Ok("None".into()),
        _ => Err(err(node, format!("argument {i} is not a number"))),
    }
}

/// A Python float literal that parses back to exactly `f`.
pub fn py_float(f: f64) -> String {
    if f.is_nan() {
        "float('nan')".into()
    } else if f.is_infinite() {
        if f > 0.0 { "float('inf')".into() } else { "float('-inf')".into() }
    } else {
        format!("{f:?}")
    }
}

pub fn dtype(d: Dtype) -> String {
    format!("mx.{}", d.name())
}

const UNARY: &[(&str, &str)] = &[
    ("Abs", "mx.abs"), ("ArcCos", "mx.arccos"), ("ArcCosh", "mx.arccosh"), ("ArcSin", "mx.arcsin"),
    ("ArcSinh", "mx.arcsinh"), ("ArcTan", "mx.arctan"), ("ArcTanh", "mx.arctanh"), ("BitwiseInvert", "mx.bitwise_invert"),
    ("Ceil", "mx.ceil"), ("Conjugate", "mx.conjugate"), ("Cos", "mx.cos"), ("Cosh", "mx.cosh"), ("Erf", "mx.erf"),
    ("ErfInv", "mx.erfinv"), ("Exp", "mx.exp"), ("Expm1", "mx.expm1"), ("Floor", "mx.floor"), ("Imag", "mx.imag"),
    ("Log1p", "mx.log1p"), ("LogicalNot", "mx.logical_not"), ("Negative", "mx.negative"), ("Real", "mx.real"),
    ("Sigmoid", "mx.sigmoid"), ("Sign", "mx.sign"), ("Sin", "mx.sin"), ("Sinh", "mx.sinh"), ("Square", "mx.square"),
    ("StopGradient", "mx.stop_gradient"), ("Tan", "mx.tan"), ("Tanh", "mx.tanh"),
];

const BINARY: &[(&str, &str)] = &[
    ("Add", "mx.add"), ("ArcTan2", "mx.arctan2"), ("Divide", "mx.divide"),
    ("Greater", "mx.greater"), ("GreaterEqual", "mx.greater_equal"), ("Less", "mx.less"), ("LessEqual", "mx.less_equal"),
    ("LogAddExp", "mx.logaddexp"), ("LogicalAnd", "mx.logical_and"), ("LogicalOr", "mx.logical_or"),
    ("Maximum", "mx.maximum"), ("Minimum", "mx.minimum"), ("Multiply", "mx.multiply"), ("NotEqual", "mx.not_equal"),
    ("FloorDivide", "mx.floor_divide"), ("Power", "mx.power"), ("Remainder", "mx.remainder"), ("Subtract", "mx.subtract"),
];

/// MLX's `Reduce::ReduceType`, in order.
const REDUCE: [&str; 6] = ["mx.all", "mx.any", "mx.sum", "mx.prod", "mx.min", "mx.max"];
/// MLX's `Scan::ReduceType`, in order.
const SCAN: [&str; 5] = ["mx.cummax", "mx.cummin", "mx.cumsum", "mx.cumprod", "mx.logcumsumexp"];
/// MLX's `BitwiseBinary::Op`, in order.
const BITWISE: [&str; 5] = ["mx.bitwise_and", "mx.bitwise_or", "mx.bitwise_xor", "mx.left_shift", "mx.right_shift"];

fn pick<'t>(node: &Node, table: &[&'t str], i: usize) -> Result<&'t str, EmitError> {
    let k = const_int(node, i)?;
    table.get(k as usize).copied().ok_or_else(|| err(node, format!("unknown kind {k}")))
}

/// The right-hand side that computes `node`'s outputs.
pub fn expr(node: &Node, cx: &Ctx) -> Result<String, EmitError> {
    let a = |i: usize| cx.ins[i].clone();
    let op = node.op.as_str();
    if let Some((_, f)) = UNARY.iter().find(|(n, _)| *n == op) {
        return Ok(format!("{f}({})", a(0)));
    }
    if let Some((_, f)) = BINARY.iter().find(|(n, _)| *n == op) {
        return Ok(format!("{f}({}, {})", a(0), a(1)));
    }
    Ok(match op {
        "Log" => {
            let base = const_int(node, 0).unwrap_or(0);
            let f = ["mx.log2", "mx.log10", "mx.log"].get(base as usize).copied().unwrap_or("mx.log");
            format!("{f}({})", a(0))
        }
        "Round" => format!("mx.round({})", a(0)),
        "Equal" if boolean(node, 0).unwrap_or(false) => format!("_nan_equal({}, {})", a(0), a(1)),
        "Equal" => format!("mx.equal({}, {})", a(0), a(1)),
        "Sqrt" => format!("{}({})", if boolean(node, 0).unwrap_or(false) { "mx.rsqrt" } else { "mx.sqrt" }, a(0)),
        "AsType" => match arg(node, 0)? {
            Arg::Dtype(d) => format!("{}.astype({})", a(0), dtype(*d)),
            _ => return Err(err(node, "no dtype")),
        },
        // Same values as the input: a copy, or `Full`'s already-broadcast value.
        "Copy" | "Full" => a(0),
        "BitwiseBinary" => format!("{}({}, {})", pick(node, &BITWISE, 0)?, a(0), a(1)),
        "DivMod" => format!("mx.divmod({}, {})", a(0), a(1)),
        "Select" => format!("mx.where({}, {}, {})", a(0), a(1), a(2)),
        "Reduce" => format!("{}({}, axis={}, keepdims=True)", pick(node, &REDUCE, 0)?, a(0), list(&ints(node, 1, cx)?)),
        "ArgReduce" => {
            let f = ["mx.argmin", "mx.argmax"][const_int(node, 0)?.clamp(0, 1) as usize];
            format!("{f}({}, axis={}, keepdims=True)", a(0), int(node, 1, cx)?)
        }
        "Scan" => format!(
            "{}({}, axis={}, reverse={}, inclusive={})",
            pick(node, &SCAN, 0)?,
            a(0),
            int(node, 1, cx)?,
            py_bool(boolean(node, 2)?),
            py_bool(boolean(node, 3)?)
        ),
        "Softmax" => format!("mx.softmax({}, axis=-1, precise={})", a(0), py_bool(boolean(node, 0)?)),
        "LogSumExp" => format!("mx.logsumexp({}, axis=-1, keepdims=True)", a(0)),
        "Sort" => format!("mx.sort({}, axis={})", a(0), int(node, 0, cx)?),
        "ArgSort" => format!("mx.argsort({}, axis={})", a(0), int(node, 0, cx)?),
        "Partition" => format!("mx.partition({}, {}, axis={})", a(0), int(node, 0, cx)?, int(node, 1, cx)?),
        "ArgPartition" => format!("mx.argpartition({}, {}, axis={})", a(0), int(node, 0, cx)?, int(node, 1, cx)?),
        "Broadcast" => format!("mx.broadcast_to({}, {})", a(0), tuple(&ints(node, 0, cx)?)),
        "Reshape" => format!("mx.reshape({}, {})", a(0), tuple(&ints(node, 0, cx)?)),
        "Transpose" => format!("mx.transpose({}, {})", a(0), list(&ints(node, 0, cx)?)),
        "Squeeze" => format!("mx.squeeze({}, axis={})", a(0), list(&ints(node, 0, cx)?)),
        "ExpandDims" => format!("mx.expand_dims({}, axis={})", a(0), list(&ints(node, 0, cx)?)),
        "Flatten" => format!("mx.flatten({}, {}, {})", a(0), int(node, 0, cx)?, int(node, 1, cx)?),
        "Unflatten" => format!("mx.unflatten({}, {}, {})", a(0), int(node, 0, cx)?, tuple(&ints(node, 1, cx)?)),
        "Slice" => format!("{}[{}]", a(0), slices(node, cx, 0)?),
        "SliceUpdate" => format!("_update({}, {}, {}, {})", a(0), slice_objects(node, cx)?, a(1), const_int(node, 0)?),
        "Scatter" => {
            let n = cx.ins.len();
            format!("_scatter({}, {}, {}, {}, {})", a(0), list(&cx.ins[1..n - 1]), a(n - 1), list(&ints(node, 1, cx)?), const_int(node, 0)?)
        }
        "Concatenate" => format!("mx.concatenate({}, axis={})", list(&cx.ins), int(node, 0, cx)?),
        "Split" => format!("mx.split({}, {}, axis={})", a(0), list(&ints(node, 0, cx)?), int(node, 1, cx)?),
        "Pad" => {
            let (axes, low, high) = (ints(node, 0, cx)?, ints(node, 1, cx)?, ints(node, 2, cx)?);
            format!("_pad({}, {}, {}, {}, {})", a(0), a(1), list(&axes), list(&low), list(&high))
        }
        "Gather" => {
            let axes = ints(node, 0, cx)?;
            let sizes = ints(node, 1, cx)?;
            format!("_gather({}, {}, {}, {})", a(0), list(&cx.ins[1..]), list(&axes), list(&sizes))
        }
        "GatherAxis" => format!("mx.take_along_axis({}, {}, axis={})", a(0), a(1), int(node, 0, cx)?),
        "ScatterAxis" if const_int(node, 0)? == 0 => format!("mx.put_along_axis({}, {}, {}, axis={})", a(0), a(1), a(2), int(node, 1, cx)?),
        "Matmul" => format!("mx.matmul({}, {})", a(0), a(1)),
        "AddMM" => format!("mx.addmm({}, {}, {}, alpha={}, beta={})", a(0), a(1), a(2), float(node, 0, cx)?, float(node, 1, cx)?),
        "Arange" => {
            let d = cx.outs[0].dtype;
            format!("mx.arange({}, {}, {}, dtype={})", float(node, 0, cx)?, float(node, 1, cx)?, float(node, 2, cx)?, dtype(d))
        }
        "RandomBits" => format!("mx.random.bits({}, {}, key={})", tuple(&ints(node, 0, cx)?), int(node, 1, cx)?, a(0)),
        "QuantizedMatmul" => format!(
            "mx.quantized_matmul({}, {}, {}, {}, transpose={}, group_size={}, bits={}, mode={})",
            a(0),
            a(1),
            a(2),
            cx.ins.get(3).cloned().unwrap_or("None".into()),
            py_bool(boolean(node, 3)?),
            int(node, 0, cx)?,
            int(node, 1, cx)?,
            mode(node, 2)?
        ),
        "GatherQMM" => gather_qmm(node, cx)?,
        "GatherMM" => format!(
            "mx.gather_mm({}, {}, {}, {}, sorted_indices={})",
            a(0),
            a(1),
            a(2),
            a(3),
            py_bool(boolean(node, 0).unwrap_or(false) || boolean(node, 1).unwrap_or(false))
        ),
        "RMSNorm" => format!("mx.fast.rms_norm({}, {}, {})", a(0), a(1), float(node, 0, cx)?),
        "LayerNorm" => format!("mx.fast.layer_norm({}, {}, {}, {})", a(0), a(1), a(2), float(node, 0, cx)?),
        _ => return Err(err(node, "no Python form is known for it yet")),
    })
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

fn mode(node: &Node, i: usize) -> Result<String, EmitError> {
    match arg(node, i)? {
        Arg::Str(s) => Ok(format!("{s:?}")),
        Arg::Int(d) => {
            let k = d.as_const().ok_or_else(|| err(node, "symbolic mode"))?;
            ["affine", "mxfp4", "mxfp8", "nvfp4"].get(k as usize).map(|m| format!("{m:?}")).ok_or_else(|| err(node, "unknown mode"))
        }
        _ => Err(err(node, "no quantization mode")),
    }
}

fn gather_qmm(node: &Node, cx: &Ctx) -> Result<String, EmitError> {
    // inputs: x, w, scales, [biases], lhs_indices, rhs_indices
    let n = cx.ins.len();
    let biases = if n == 6 { cx.ins[3].clone() } else { "None".into() };
    Ok(format!(
        "mx.gather_qmm({}, {}, {}, {}, lhs_indices={}, rhs_indices={}, transpose={}, group_size={}, bits={}, mode={}, sorted_indices={})",
        cx.ins[0],
        cx.ins[1],
        cx.ins[2],
        biases,
        cx.ins[n - 2],
        cx.ins[n - 1],
        py_bool(boolean(node, 3)?),
        int(node, 0, cx)?,
        int(node, 1, cx)?,
        mode(node, 2)?,
        py_bool(boolean(node, 5).unwrap_or(false))
    ))
}

/// `(start, stop, step)` per axis from the three lists at `first`, `first + 1`, `first + 2`.
/// A negative stop (before index 0, stepping backwards) means "to the start": `None`.
fn bounds(node: &Node, cx: &Ctx, first: usize) -> Result<Vec<(String, Option<String>, String)>, EmitError> {
    let (start, stop, step) = (ints(node, first, cx)?, ints(node, first + 1, cx)?, ints(node, first + 2, cx)?);
    Ok(start.into_iter().zip(stop).zip(step).map(|((a, b), s)| (a, (!b.starts_with('-')).then_some(b), s)).collect())
}

/// `a:b, c:d:2` for `x[...]`.
fn slices(node: &Node, cx: &Ctx, first: usize) -> Result<String, EmitError> {
    let parts: Vec<String> = bounds(node, cx, first)?
        .into_iter()
        .map(|(a, b, s)| {
            let b = b.unwrap_or_default();
            if s == "1" { format!("{a}:{b}") } else { format!("{a}:{b}:{s}") }
        })
        .collect();
    Ok(parts.join(", "))
}

/// `(slice(a, b, 1), ...)` for SliceUpdate's [reduce, start, stop, strides].
fn slice_objects(node: &Node, cx: &Ctx) -> Result<String, EmitError> {
    let parts: Vec<String> =
        bounds(node, cx, 1)?.into_iter().map(|(a, b, s)| format!("slice({a}, {}, {s})", b.unwrap_or("None".into()))).collect();
    Ok(tuple(&parts))
}
