//! One Python expression per primitive, reproducing it bit for bit.

use crate::EmitError;
use superopt_ir::{Arg, Dim, Dtype, Node, Op, ReduceKind, Value};

/// What a primitive's emission needs to know beyond its node.
pub struct Ctx<'a> {
    /// Python source of each input.
    pub ins: Vec<String>,
    /// The output values (shape at the reference size, dtype).
    pub outs: Vec<&'a Value>,
    /// The input values.
    pub in_values: Vec<&'a Value>,
    /// Renders an integer argument.
    pub dim: &'a dyn Fn(&Dim) -> String,
    /// A SliceUpdate of an argument `fn` updates in place, read by nothing else: written in
    /// place as `fn` wrote it (see [`in_place`]).
    pub in_place: bool,
}

/// Whether `node` is a SliceUpdate of an input that `fn` updates in place (the signature's
/// `updated`) and that no other node reads: emitted as `a[index] = updates` on the argument
/// itself, as `fn` did, so that MLX writes a buffer no one else holds where it is (a KV
/// cache's) instead of copying it whole.
pub fn in_place(p: &superopt_ir::Program, node: &Node) -> bool {
    let Some(&base) = node.inputs.first() else { return false };
    if node.op != Op::SliceUpdate || p.signature.updated.is_empty() || p.outputs.contains(&base) {
        return false; // cheap tests first: this runs for every node of 60k-node programs
    }
    let updated = p.inputs.iter().position(|i| *i == base).is_some_and(|k| p.signature.updated.contains(&k));
    updated && p.nodes.iter().filter(|n| n.inputs.contains(&base)).count() == 1
}

fn err(node: &Node, why: impl Into<String>) -> EmitError {
    EmitError::Op { op: node.op.name().into(), why: why.into() }
}

fn arg(node: &Node, i: usize) -> Result<&Arg, EmitError> {
    node.args.get(i).ok_or_else(|| err(node, format!("missing argument {i}")))
}

fn int(node: &Node, i: usize, cx: &Ctx) -> Result<String, EmitError> {
    arg(node, i)?.int().map(|d| (cx.dim)(d)).ok_or_else(|| err(node, format!("argument {i} is not an integer")))
}

fn const_int(node: &Node, i: usize) -> Result<i64, EmitError> {
    arg(node, i)?
        .int()
        .and_then(Dim::as_const)
        .ok_or_else(|| err(node, format!("argument {i} is not a constant integer")))
}

fn ints(node: &Node, i: usize, cx: &Ctx) -> Result<Vec<String>, EmitError> {
    let items = arg(node, i)?.list().ok_or_else(|| err(node, format!("argument {i} is not a list")))?;
    items
        .iter()
        .map(|a| a.int().map(|d| (cx.dim)(d)).ok_or_else(|| err(node, "a list item is not an integer")))
        .collect()
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

pub use superopt_ir::print::py_float;

pub fn dtype(d: Dtype) -> String {
    format!("mx.{}", d.name())
}

const UNARY: &[(Op, &str)] = &[
    (Op::Abs, "mx.abs"),
    (Op::ArcCos, "mx.arccos"),
    (Op::ArcCosh, "mx.arccosh"),
    (Op::ArcSin, "mx.arcsin"),
    (Op::ArcSinh, "mx.arcsinh"),
    (Op::ArcTan, "mx.arctan"),
    (Op::ArcTanh, "mx.arctanh"),
    (Op::BitwiseInvert, "mx.bitwise_invert"),
    (Op::Ceil, "mx.ceil"),
    (Op::Conjugate, "mx.conjugate"),
    (Op::Cos, "mx.cos"),
    (Op::Cosh, "mx.cosh"),
    (Op::Erf, "mx.erf"),
    (Op::ErfInv, "mx.erfinv"),
    (Op::Exp, "mx.exp"),
    (Op::Expm1, "mx.expm1"),
    (Op::Floor, "mx.floor"),
    (Op::Imag, "mx.imag"),
    (Op::Log1p, "mx.log1p"),
    (Op::LogicalNot, "mx.logical_not"),
    (Op::Negative, "mx.negative"),
    (Op::Real, "mx.real"),
    (Op::Sigmoid, "mx.sigmoid"),
    (Op::Sign, "mx.sign"),
    (Op::Sin, "mx.sin"),
    (Op::Sinh, "mx.sinh"),
    (Op::Square, "mx.square"),
    (Op::StopGradient, "mx.stop_gradient"),
    (Op::Tan, "mx.tan"),
    (Op::Tanh, "mx.tanh"),
];

const BINARY: &[(Op, &str)] = &[
    (Op::Add, "mx.add"),
    (Op::ArcTan2, "mx.arctan2"),
    (Op::Divide, "mx.divide"),
    (Op::Greater, "mx.greater"),
    (Op::GreaterEqual, "mx.greater_equal"),
    (Op::Less, "mx.less"),
    (Op::LessEqual, "mx.less_equal"),
    (Op::LogAddExp, "mx.logaddexp"),
    (Op::LogicalAnd, "mx.logical_and"),
    (Op::LogicalOr, "mx.logical_or"),
    (Op::Maximum, "mx.maximum"),
    (Op::Minimum, "mx.minimum"),
    (Op::Multiply, "mx.multiply"),
    (Op::NotEqual, "mx.not_equal"),
    (Op::FloorDivide, "mx.floor_divide"),
    (Op::Power, "mx.power"),
    (Op::Remainder, "mx.remainder"),
    (Op::Subtract, "mx.subtract"),
];

/// The MLX function of a reduction.
fn reduce_fn(k: ReduceKind) -> &'static str {
    match k {
        ReduceKind::And => "mx.all",
        ReduceKind::Or => "mx.any",
        ReduceKind::Sum => "mx.sum",
        ReduceKind::Prod => "mx.prod",
        ReduceKind::Min => "mx.min",
        ReduceKind::Max => "mx.max",
    }
}
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
    let op = node.op;
    if let Some((_, f)) = UNARY.iter().find(|(n, _)| *n == op) {
        return Ok(format!("{f}({})", a(0)));
    }
    if let Some((_, f)) = BINARY.iter().find(|(n, _)| *n == op) {
        return Ok(format!("{f}({}, {})", a(0), a(1)));
    }
    Ok(match op {
        Op::Log => {
            let base = const_int(node, 0).unwrap_or(0);
            let f = ["mx.log2", "mx.log10", "mx.log"].get(base as usize).copied().unwrap_or("mx.log");
            format!("{f}({})", a(0))
        }
        Op::Round => format!("mx.round({})", a(0)),
        Op::Equal if boolean(node, 0).unwrap_or(false) => format!("_nan_equal({}, {})", a(0), a(1)),
        Op::Equal => format!("mx.equal({}, {})", a(0), a(1)),
        Op::Sqrt => format!("{}({})", if boolean(node, 0).unwrap_or(false) { "mx.rsqrt" } else { "mx.sqrt" }, a(0)),
        Op::AsType => match arg(node, 0)? {
            Arg::Dtype(d) => format!("{}.astype({})", a(0), dtype(*d)),
            _ => return Err(err(node, "no dtype")),
        },
        // Same values as the input: a copy, or `Full`'s already-broadcast value.
        Op::Copy | Op::Full => a(0),
        Op::BitwiseBinary => format!("{}({}, {})", pick(node, &BITWISE, 0)?, a(0), a(1)),
        Op::DivMod => format!("mx.divmod({}, {})", a(0), a(1)),
        Op::Select => format!("mx.where({}, {}, {})", a(0), a(1), a(2)),
        Op::Reduce => {
            format!(
                "{}({}, axis={}, keepdims=True)",
                reduce_fn(node.reduce_kind().ok_or_else(|| err(node, "unknown reduction"))?),
                a(0),
                list(&ints(node, 1, cx)?)
            )
        }
        Op::ArgReduce => {
            let f = ["mx.argmin", "mx.argmax"][const_int(node, 0)?.clamp(0, 1) as usize];
            format!("{f}({}, axis={}, keepdims=True)", a(0), int(node, 1, cx)?)
        }
        Op::Scan => format!(
            "{}({}, axis={}, reverse={}, inclusive={})",
            pick(node, &SCAN, 0)?,
            a(0),
            int(node, 1, cx)?,
            py_bool(boolean(node, 2)?),
            py_bool(boolean(node, 3)?)
        ),
        Op::Softmax => format!("mx.softmax({}, axis=-1, precise={})", a(0), py_bool(boolean(node, 0)?)),
        Op::LogSumExp => format!("mx.logsumexp({}, axis=-1, keepdims=True)", a(0)),
        Op::Sort => format!("mx.sort({}, axis={})", a(0), int(node, 0, cx)?),
        Op::ArgSort => format!("mx.argsort({}, axis={})", a(0), int(node, 0, cx)?),
        Op::Partition => format!("mx.partition({}, {}, axis={})", a(0), int(node, 0, cx)?, int(node, 1, cx)?),
        Op::ArgPartition => format!("mx.argpartition({}, {}, axis={})", a(0), int(node, 0, cx)?, int(node, 1, cx)?),
        Op::Broadcast => format!("mx.broadcast_to({}, {})", a(0), tuple(&ints(node, 0, cx)?)),
        Op::Reshape => format!("mx.reshape({}, {})", a(0), tuple(&ints(node, 0, cx)?)),
        Op::Transpose => format!("mx.transpose({}, {})", a(0), list(&ints(node, 0, cx)?)),
        Op::Squeeze => format!("mx.squeeze({}, axis={})", a(0), list(&ints(node, 0, cx)?)),
        Op::ExpandDims => format!("mx.expand_dims({}, axis={})", a(0), list(&ints(node, 0, cx)?)),
        Op::Flatten => format!("mx.flatten({}, {}, {})", a(0), int(node, 0, cx)?, int(node, 1, cx)?),
        Op::Unflatten => format!("mx.unflatten({}, {}, {})", a(0), int(node, 0, cx)?, tuple(&ints(node, 1, cx)?)),
        Op::Slice => format!("{}[{}]", a(0), slices(node, cx, 0)?),
        Op::SliceUpdate if cx.in_place && const_int(node, 0)? == 4 => {
            format!("_assign({}, {}, {})", a(0), slice_objects(node, cx)?, a(1))
        }
        Op::SliceUpdate => {
            format!("_update({}, {}, {}, {})", a(0), slice_objects(node, cx)?, a(1), const_int(node, 0)?)
        }
        Op::Scatter => {
            let n = cx.ins.len();
            format!(
                "_scatter({}, {}, {}, {}, {})",
                a(0),
                list(&cx.ins[1..n - 1]),
                a(n - 1),
                list(&ints(node, 1, cx)?),
                const_int(node, 0)?
            )
        }
        Op::Concatenate => format!("mx.concatenate({}, axis={})", list(&cx.ins), int(node, 0, cx)?),
        Op::Split => format!("mx.split({}, {}, axis={})", a(0), list(&ints(node, 0, cx)?), int(node, 1, cx)?),
        Op::Pad => {
            let (axes, low, high) = (ints(node, 0, cx)?, ints(node, 1, cx)?, ints(node, 2, cx)?);
            format!("_pad({}, {}, {}, {}, {})", a(0), a(1), list(&axes), list(&low), list(&high))
        }
        Op::Gather => {
            let axes = ints(node, 0, cx)?;
            let sizes = ints(node, 1, cx)?;
            format!("_gather({}, {}, {}, {})", a(0), list(&cx.ins[1..]), list(&axes), list(&sizes))
        }
        Op::GatherAxis => format!("mx.take_along_axis({}, {}, axis={})", a(0), a(1), int(node, 0, cx)?),
        // MLX's ScatterAxis::ReduceType is {Sum, None}; the Sum form exports as ScatterAxisSum.
        Op::ScatterAxis if const_int(node, 0)? == 1 => {
            format!("mx.put_along_axis({}, {}, {}, axis={})", a(0), a(1), a(2), int(node, 1, cx)?)
        }
        Op::Matmul => format!("mx.matmul({}, {})", a(0), a(1)),
        // MLX's Convolution state: strides, padding low and high, kernel and input dilation,
        // groups, flip.
        Op::Convolution => format!(
            "mx.conv_general({}, {}, stride={}, padding=({}, {}), kernel_dilation={}, input_dilation={}, groups={}, \
             flip={})",
            a(0),
            a(1),
            list(&ints(node, 0, cx)?),
            list(&ints(node, 1, cx)?),
            list(&ints(node, 2, cx)?),
            list(&ints(node, 3, cx)?),
            list(&ints(node, 4, cx)?),
            int(node, 5, cx)?,
            py_bool(boolean(node, 6)?)
        ),
        // MLX's AddMM takes (a, b, c) for `alpha * (a @ b) + beta * c`; mx.addmm takes c first.
        Op::AddMM => format!(
            "mx.addmm({}, {}, {}, alpha={}, beta={})",
            a(2),
            a(0),
            a(1),
            float(node, 0, cx)?,
            float(node, 1, cx)?
        ),
        Op::Arange => {
            let d = cx.outs[0].dtype;
            format!(
                "mx.arange({}, {}, {}, dtype={})",
                float(node, 0, cx)?,
                float(node, 1, cx)?,
                float(node, 2, cx)?,
                dtype(d)
            )
        }
        Op::RandomBits => {
            format!("mx.random.bits({}, {}, key={})", tuple(&ints(node, 0, cx)?), int(node, 1, cx)?, a(0))
        }
        Op::QuantizedMatmul => format!(
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
        Op::GatherQMM => gather_qmm(node, cx)?,
        // MLX's fast::Quantize state: group size, bits, mode, and whether it dequantizes.
        Op::Quantize if boolean(node, 3)? => format!(
            "mx.dequantize({}, group_size={}, bits={}, mode={})",
            cx.ins.join(", "),
            int(node, 0, cx)?,
            int(node, 1, cx)?,
            mode(node, 2)?
        ),
        Op::Quantize => format!(
            "mx.quantize({}, group_size={}, bits={}, mode={})",
            a(0),
            int(node, 0, cx)?,
            int(node, 1, cx)?,
            mode(node, 2)?
        ),
        Op::GatherMM => format!(
            "mx.gather_mm({}, {}, {}, {}, sorted_indices={})",
            a(0),
            a(1),
            a(2),
            a(3),
            py_bool(boolean(node, 0).unwrap_or(false) || boolean(node, 1).unwrap_or(false))
        ),
        Op::RMSNorm | Op::LayerNorm | Op::RoPE | Op::ScaledDotProductAttention => fast(node, cx)?,
        _ => return Err(err(node, "no Python form is known for it yet")),
    })
}

/// `mx.fast` kernels, as GPU backends export them (on CPU they export decomposed).
fn fast(node: &Node, cx: &Ctx) -> Result<String, EmitError> {
    let a = |i: usize| cx.ins.get(i).cloned().unwrap_or_else(|| "None".into());
    // The norms get a 0-d 1 (weight) or 0 (bias) where Python passed None.
    let opt = |i: usize| if cx.in_values.get(i).is_some_and(|v| v.shape.is_empty()) { "None".into() } else { a(i) };
    Ok(match node.op {
        Op::RMSNorm => format!("mx.fast.rms_norm({}, {}, {})", a(0), opt(1), float(node, 0, cx)?),
        Op::LayerNorm => format!("mx.fast.layer_norm({}, {}, {}, {})", a(0), opt(1), opt(2), float(node, 0, cx)?),
        Op::RoPE => {
            // [dims, traditional, base, scale, forward]; inputs x, offset, [freqs]
            if !boolean(node, 4)? {
                return Err(err(node, "the backward rotation has no Python form"));
            }
            let freqs = if cx.ins.len() > 2 { a(2) } else { "None".into() };
            let base = if freqs == "None" { float(node, 2, cx)? } else { "None".into() };
            format!(
                "mx.fast.rope({}, {}, traditional={}, base={base}, scale={}, offset={}, freqs={freqs})",
                a(0),
                int(node, 0, cx)?,
                py_bool(boolean(node, 1)?),
                float(node, 3, cx)?,
                a(1)
            )
        }
        _ => {
            // [scale, do_causal, has_sinks, output_logsumexp, ...]; inputs q, k, v, [mask], [sinks]
            if boolean(node, 3).unwrap_or(false) {
                return Err(err(node, "attention with a logsumexp output has no Python form"));
            }
            let sinks = boolean(node, 2).unwrap_or(false);
            let extra = cx.ins.len() - 3 - sinks as usize;
            let mask = match (boolean(node, 1)?, extra) {
                (true, _) => "\"causal\"".to_string(),
                (false, 1) => a(3),
                _ => "None".into(),
            };
            let sinks = if sinks { format!(", sinks={}", a(cx.ins.len() - 1)) } else { String::new() };
            format!(
                "mx.fast.scaled_dot_product_attention({}, {}, {}, scale={}, mask={mask}{sinks})",
                a(0),
                a(1),
                a(2),
                float(node, 0, cx)?
            )
        }
    })
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

fn mode(node: &Node, i: usize) -> Result<String, EmitError> {
    match arg(node, i)? {
        Arg::Str(s) => Ok(format!("{s:?}")),
        Arg::Int(d) => {
            let k = d.as_const().ok_or_else(|| err(node, "symbolic mode"))?;
            ["affine", "mxfp4", "mxfp8", "nvfp4"]
                .get(k as usize)
                .map(|m| format!("{m:?}"))
                .ok_or_else(|| err(node, "unknown mode"))
        }
        _ => Err(err(node, "no quantization mode")),
    }
}

fn gather_qmm(node: &Node, cx: &Ctx) -> Result<String, EmitError> {
    // inputs: x, w, scales, [biases], lhs_indices, rhs_indices
    let n = cx.ins.len();
    let biases = if n == 6 { cx.ins[3].clone() } else { "None".into() };
    Ok(format!(
        "mx.gather_qmm({}, {}, {}, {}, lhs_indices={}, rhs_indices={}, transpose={}, group_size={}, bits={}, \
         mode={}, sorted_indices={})",
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
            if s == "1" {
                format!("{a}:{b}")
            } else {
                format!("{a}:{b}:{s}")
            }
        })
        .collect();
    Ok(parts.join(", "))
}

/// `(slice(a, b, 1), ...)` for SliceUpdate's [reduce, start, stop, strides].
fn slice_objects(node: &Node, cx: &Ctx) -> Result<String, EmitError> {
    let parts: Vec<String> = bounds(node, cx, 1)?
        .into_iter()
        .map(|(a, b, s)| format!("slice({a}, {}, {s})", b.unwrap_or("None".into())))
        .collect();
    Ok(tuple(&parts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use superopt_ir::Dtype;

    fn emit_node(op: &str, args: Vec<Arg>, in_shapes: &[&[i64]]) -> String {
        let values: Vec<Value> = in_shapes.iter().map(|s| Value { shape: s.to_vec(), dtype: Dtype::Float32 }).collect();
        let out = Value { shape: in_shapes[0].to_vec(), dtype: Dtype::Float32 };
        let node = Node {
            op: Op::parse(op).expect("a known primitive"),
            args,
            inputs: (0..values.len()).collect(),
            outputs: vec![values.len()],
        };
        let dim = |d: &Dim| d.to_string();
        let cx = Ctx {
            ins: (0..values.len()).map(|i| format!("t{i}")).collect(),
            outs: vec![&out],
            in_values: values.iter().collect(),
            dim: &dim,
            in_place: false,
        };
        expr(&node, &cx).unwrap()
    }

    fn i(v: i64) -> Arg {
        Arg::Int(Dim::constant(v))
    }

    #[test]
    fn layer_norm_without_weight_or_bias_passes_none() {
        let e = emit_node("LayerNorm", vec![Arg::Float(1e-6)], &[&[4, 8], &[], &[]]);
        assert_eq!(e, "mx.fast.layer_norm(t0, None, None, 1e-6)");
        let e = emit_node("LayerNorm", vec![Arg::Float(1e-5)], &[&[4, 8], &[8], &[8]]);
        assert_eq!(e, "mx.fast.layer_norm(t0, t1, t2, 1e-5)");
    }

    #[test]
    fn rope_reads_dims_mode_base_scale_and_offset() {
        let args = vec![i(32), Arg::Bool(true), Arg::Float(500000.0), Arg::Float(0.5), Arg::Bool(true)];
        let e = emit_node("RoPE", args, &[&[1, 4, 128, 64], &[]]);
        assert_eq!(e, "mx.fast.rope(t0, 32, traditional=True, base=500000.0, scale=0.5, offset=t1, freqs=None)");
    }

    #[test]
    fn rope_backward_is_refused() {
        let args = vec![i(32), Arg::Bool(true), Arg::Float(1e4), Arg::Float(1.0), Arg::Bool(false)];
        let values = [Value { shape: vec![2], dtype: Dtype::Float32 }, Value { shape: vec![], dtype: Dtype::Int32 }];
        let node = Node { op: Op::RoPE, args, inputs: vec![0, 1], outputs: vec![2] };
        let dim = |d: &Dim| d.to_string();
        let cx = Ctx {
            ins: vec!["x".into(), "o".into()],
            outs: vec![&values[0]],
            in_values: values.iter().collect(),
            dim: &dim,
            in_place: false,
        };
        assert!(expr(&node, &cx).is_err());
    }

    /// A buffer of 4 x 8 and a row of 1 x 8 written at row 2: `update = buffer[2:3] <- row`.
    fn updating(updated: Vec<usize>, also_read: bool) -> superopt_ir::Program {
        use superopt_ir::{OutputKind, Signature};
        let v = |shape: &[i64]| Value { shape: shape.to_vec(), dtype: Dtype::Float32 };
        let ints = |v: [i64; 2]| Arg::List(v.iter().map(|x| i(*x)).collect());
        let args = vec![i(4), ints([2, 0]), ints([3, 8]), ints([1, 1])];
        let mut nodes = vec![Node { op: Op::SliceUpdate, args, inputs: vec![0, 1], outputs: vec![2] }];
        let mut values = vec![v(&[4, 8]), v(&[1, 8]), v(&[4, 8])];
        if also_read {
            nodes.push(Node { op: Op::Exp, args: vec![], inputs: vec![0], outputs: vec![3] });
            values.push(v(&[4, 8]));
        }
        let signature = Signature { updated, ..Signature::returning(OutputKind::Tuple) };
        let outputs = (2..values.len()).collect();
        superopt_ir::Program { values, inputs: vec![0, 1], constants: vec![], nodes, outputs, signature }
    }

    #[test]
    fn an_argument_fn_updates_in_place_is_updated_in_place() {
        let p = updating(vec![0], false);
        assert!(in_place(&p, &p.nodes[0]));
        let dim = |d: &Dim| d.to_string();
        let cx = Ctx {
            ins: vec!["keys".into(), "row".into()],
            outs: vec![&p.values[2]],
            in_values: vec![&p.values[0], &p.values[1]],
            dim: &dim,
            in_place: true,
        };
        assert_eq!(expr(&p.nodes[0], &cx).unwrap(), "_assign(keys, (slice(2, 3, 1), slice(0, 8, 1)), row)");
        // Near misses: fn did not update it in place; another node reads the buffer as it was.
        let p = updating(vec![], false);
        assert!(!in_place(&p, &p.nodes[0]), "copied, as fn left the caller's array as it was");
        let p = updating(vec![0], true);
        assert!(!in_place(&p, &p.nodes[0]), "the buffer before the update is read too");
    }

    #[test]
    fn attention_mask_forms() {
        let causal = vec![Arg::Float(0.125), Arg::Bool(true), Arg::Bool(false), Arg::Bool(false)];
        let e = emit_node("ScaledDotProductAttention", causal, &[&[1, 8, 16, 64], &[1, 2, 16, 64], &[1, 2, 16, 64]]);
        assert_eq!(e, "mx.fast.scaled_dot_product_attention(t0, t1, t2, scale=0.125, mask=\"causal\")");
        let additive = vec![Arg::Float(0.125), Arg::Bool(false), Arg::Bool(false), Arg::Bool(false)];
        let e = emit_node(
            "ScaledDotProductAttention",
            additive,
            &[&[1, 8, 16, 64], &[1, 2, 16, 64], &[1, 2, 16, 64], &[16, 16]],
        );
        assert_eq!(e, "mx.fast.scaled_dot_product_attention(t0, t1, t2, scale=0.125, mask=t3)");
    }

    #[test]
    fn slice_update_and_negative_stops() {
        let list = |xs: &[i64]| Arg::List(xs.iter().map(|x| i(*x)).collect());
        let e =
            emit_node("SliceUpdate", vec![i(4), list(&[0, 2]), list(&[3, 18]), list(&[1, 1])], &[&[3, 20], &[3, 16]]);
        assert_eq!(e, "_update(t0, (slice(0, 3, 1), slice(2, 18, 1)), t1, 4)");
        let e = emit_node("Slice", vec![list(&[7]), list(&[-1]), list(&[-1])], &[&[8]]);
        assert_eq!(e, "t0[7::-1]");
    }

    #[test]
    fn put_along_axis_is_scatter_axis_without_a_reduction() {
        let e = emit_node("ScatterAxis", vec![i(1), i(1)], &[&[3, 8], &[3, 2], &[3, 2]]);
        assert_eq!(e, "mx.put_along_axis(t0, t1, t2, axis=1)");
        let values = [&[3i64, 8][..], &[3, 2], &[3, 2]].map(|s| Value { shape: s.to_vec(), dtype: Dtype::Float32 });
        let sum = Node { op: Op::ScatterAxis, args: vec![i(0), i(1)], inputs: vec![0, 1, 2], outputs: vec![3] };
        let dim = |d: &Dim| d.to_string();
        let ins = ["t0", "t1", "t2"].map(String::from).to_vec();
        let cx = Ctx { ins, outs: vec![&values[0]], in_values: values.iter().collect(), dim: &dim, in_place: false };
        assert!(expr(&sum, &cx).is_err(), "a sum is not an assignment");
    }

    #[test]
    fn quantize_and_dequantize_by_the_flag() {
        let args = |back: bool| vec![i(64), i(8), i(0), Arg::Bool(back)];
        let e = emit_node("Quantize", args(false), &[&[4, 128]]);
        assert_eq!(e, "mx.quantize(t0, group_size=64, bits=8, mode=\"affine\")");
        let e = emit_node("Quantize", args(true), &[&[4, 32], &[4, 2], &[4, 2]]);
        assert_eq!(e, "mx.dequantize(t0, t1, t2, group_size=64, bits=8, mode=\"affine\")");
    }

    #[test]
    fn nan_equal_is_not_plain_equal() {
        assert_eq!(emit_node("Equal", vec![Arg::Bool(true)], &[&[4], &[4]]), "_nan_equal(t0, t1)");
        assert_eq!(emit_node("Equal", vec![Arg::Bool(false)], &[&[4], &[4]]), "mx.equal(t0, t1)");
    }
}
