//! Hand-written patterns replaced by MLX's fused primitives: `mx.fast.rms_norm`,
//! `mx.fast.layer_norm`, `mx.fast.rope` (traditional or not, or by `rotate_half`; base and
//! offset read from the angle table), `mx.softmax` (also for an exponentiated log-softmax),
//! `mx.sigmoid` (and SiLU as `x * sigmoid(x)`, GELU's tanh form as `x * sigmoid(2u)`),
//! `mx.fast.scaled_dot_product_attention` (scale or constant divisor, GQA by repeat, causal
//! mask by `arange` comparison, additive masks, a float32 softmax between casts).
//! They round differently from the hand-written form; verification judges that,
//! and timing decides whether they stay.
//! May touch: the whole matched subgraph, replaced by one fused node.

use super::{const_int, const_list, node_parts, same_f32, Ctx, Family::Fast, Rule};
use crate::egraph::fold::{find_op, fold, Table};
use egg::Id;
use superopt_ir::Arg;
use superopt_ir::Dtype;
use superopt_ir::Op;

const RMS: &str = "(Sqrt ?r (Add (Multiply (Reduce ?red (Multiply ?x ?x)) ?n) ?eps))";
const RMS_DIV: &str = "(Sqrt ?r (Add (Divide (Reduce ?red (Multiply ?x ?x)) ?n) ?eps))";
const CENTERED: &str = "(Subtract ?x (Multiply (Reduce ?r1 ?x) ?n1))";
const ROT_1: &str = "(Subtract (Multiply ?x1 ?c) (Multiply ?x2 ?s))";
const ROT_2: &str = "(Add (Multiply ?x1 ?s) (Multiply ?x2 ?c))";
const ROTATED: &str = "(Subtract (Multiply ?x1 ?c) (Multiply ?x2 ?s)) (Add (Multiply ?x1 ?s) (Multiply ?x2 ?c))";
const SHIFTED: &str = "(Subtract ?x (Reduce ?rm ?x))";
const SCORES: &str = "(Multiply (Matmul ?q (Transpose ?t ?k)) ?s)";
/// Scores divided by a constant (`q @ k.T / sqrt(d)`): the scale is its reciprocal.
const SCORES_DIV: &str = "(Divide (Matmul ?q (Transpose ?t ?k)) ?d)";
const CAUSAL: &str = "(GreaterEqual (ExpandDims ?e1 ?ar) (ExpandDims ?e2 ?ar))";
/// k and v repeated to q's heads: `k[:, :, None]` broadcast and reshaped.
const REPEATED_KV: &str =
    "(Reshape ?s1 (Broadcast ?b1 (ExpandDims ?e1 ?k))) (Reshape ?s2 (Broadcast ?b2 (ExpandDims ?e2 ?v)))";

fn ln_core() -> String {
    format!("(Multiply {CENTERED} (Sqrt ?r (Add (Multiply (Reduce ?r2 (Multiply {CENTERED} {CENTERED})) ?n2) ?eps)))")
}

pub fn rules() -> Vec<Rule> {
    let ln = ln_core();
    vec![
        Rule::build(Fast, "rms-norm", &format!("(Multiply (Multiply ?x {RMS}) ?w)"), |cx| rms_norm(cx, false, true)),
        Rule::build(Fast, "rms-norm-divide", &format!("(Multiply (Multiply ?x {RMS_DIV}) ?w)"), |cx| {
            rms_norm(cx, true, true)
        }),
        Rule::build(Fast, "rms-norm-no-weight", &format!("(Multiply ?x {RMS})"), |cx| rms_norm(cx, false, false)),
        Rule::build(
            Fast,
            "rms-norm-weighted-after-cast",
            "(Multiply (AsType ?c2 (RMSNorm ?e (AsType ?c1 ?x) ?one)) ?w)",
            rms_norm_after_cast,
        ),
        Rule::build(Fast, "layer-norm", &format!("(Add (Multiply {ln} ?w) ?b)"), |cx| layer_norm(cx, true, true)),
        Rule::build(Fast, "layer-norm-no-bias", &format!("(Multiply {ln} ?w)"), |cx| layer_norm(cx, true, false)),
        Rule::build(Fast, "layer-norm-no-affine", &ln, |cx| layer_norm(cx, false, false)),
        Rule::build(
            Fast,
            "softmax",
            "(Divide (Exp (Subtract ?x (Reduce ?rm ?x))) (Reduce ?rs (Exp (Subtract ?x (Reduce ?rm ?x)))))",
            |cx| softmax(cx, true),
        ),
        Rule::build(Fast, "softmax-unshifted", "(Divide (Exp ?x) (Reduce ?rs (Exp ?x)))", |cx| softmax(cx, false)),
        Rule::build(
            Fast,
            "softmax-log-shifted",
            &format!("(Exp (Subtract {SHIFTED} (Log ?lb (Reduce ?rs (Exp {SHIFTED})))))"),
            softmax_of_log,
        ),
        Rule::build(Fast, "sdpa-gqa-unrepeat", &format!("(ScaledDotProductAttention ?a ?q {REPEATED_KV})"), |cx| {
            gqa_unrepeat(cx, false)
        }),
        Rule::build(
            Fast,
            "sdpa-gqa-unrepeat-masked",
            &format!("(ScaledDotProductAttention ?a ?q {REPEATED_KV} ?mask)"),
            |cx| gqa_unrepeat(cx, true),
        ),
        Rule::build(Fast, "sigmoid", "(Divide ?one (Add ?one2 (Exp (Negative ?x))))", |cx| {
            sigmoid(cx, &["?one", "?one2"], false)
        }),
        Rule::build(Fast, "silu", "(Divide ?x (Add ?one (Exp (Negative ?x))))", |cx| sigmoid(cx, &["?one"], true)),
        Rule::build(Fast, "gelu-tanh", "(Multiply (Multiply ?x ?half) (Add (Tanh ?u) ?one))", gelu_tanh),
        Rule::build(Fast, "rope", &format!("(Concatenate ?ax {ROTATED})"), |cx| rope(cx, false)),
        Rule::build(
            Fast,
            "rope-rotate-half",
            "(Add (Multiply ?x ?c) (Multiply (Concatenate ?ax (Negative ?x2) ?x1) ?s))",
            rope_rotate_half,
        ),
        Rule::build(
            Fast,
            "rope-traditional",
            &format!("(Reshape ?shape (Concatenate ?ax (ExpandDims ?e1 {ROT_1}) (ExpandDims ?e2 {ROT_2})))"),
            |cx| rope(cx, true),
        ),
    ]
    .into_iter()
    .chain(attention_rules())
    .collect()
}

/// `softmax(scores [masked]) @ v` as SDPA: scores scaled by a multiply or divided by a constant;
/// unmasked, an additive mask or a causal `where`; the softmax in the scores' dtype or in float32
/// between two casts (`softmax(s.astype(mx.float32)).astype(q.dtype)`, as SDPA computes it).
fn attention_rules() -> Vec<Rule> {
    let mut rules = vec![];
    for (scores, scaled) in [(SCORES, ""), (SCORES_DIV, "-divided")] {
        for (mask, masked) in [(Mask::None, ""), (Mask::Additive, "-additive-mask"), (Mask::Causal, "-causal")] {
            for (cast, in_f32) in [(false, ""), (true, "-float32-softmax")] {
                let name = format!("sdpa{scaled}{masked}{in_f32}");
                rules.push(Rule::build(Fast, &name, &sdpa(scores, mask, cast), attention));
            }
        }
    }
    rules
}

/// `?var` reduces with `kind` (2 sum, 5 max) over the last axis of `?x`.
fn reduces_last(cx: &Ctx, var: &str, kind: i64) -> bool {
    let (Some(args), Some(rank)) = (cx.args(var), cx.rank("?x")) else { return false };
    const_int(args, 0) == Some(kind) && const_list(args, 1) == Some(vec![rank as i64 - 1])
}

fn last_dim(cx: &Ctx) -> Option<i64> {
    cx.shape("?x")?.last().copied()
}

/// `?n` is `1/D` (or `D` when the mean divides), D the last axis of `?x`.
fn is_mean_scale(cx: &Ctx, var: &str, divides: bool) -> bool {
    let (Some(n), Some(d)) = (cx.scalar(var), last_dim(cx)) else { return false };
    let want = if divides { d as f64 } else { 1.0 / d as f64 };
    same_f32(n, want)
}

/// A per-feature vector `[D]` of `?x`'s dtype.
fn is_feature_vector(cx: &Ctx, var: &str) -> bool {
    let (Some(v), Some(x)) = (cx.value(var), cx.value("?x")) else { return false };
    v.shape.len() == 1 && Some(v.shape[0]) == x.shape.last().copied() && v.dtype == x.dtype
}

fn float_x(cx: &Ctx) -> bool {
    cx.value("?x").is_some_and(|v| v.dtype.is_float() && !v.shape.is_empty())
}

fn eps(cx: &Ctx) -> Option<f64> {
    cx.scalar("?eps").filter(|e| *e >= 0.0 && e.is_finite())
}

fn rms_norm(cx: &mut Ctx, divides: bool, weighted: bool) -> Option<Id> {
    let ok = float_x(cx)
        && cx.args("?r")? == [Arg::Bool(true)]
        && reduces_last(cx, "?red", 2)
        && is_mean_scale(cx, "?n", divides)
        && (!weighted || is_feature_vector(cx, "?w"));
    if !ok {
        return None;
    }
    let e = eps(cx)?;
    let x = cx.id("?x");
    let w = if weighted { cx.id("?w") } else { cx.scalar_const(1.0, cx.value("?x")?.dtype) };
    Some(cx.op(Op::RMSNorm, &[Arg::Float(e)], &[x, w]))
}

/// Hugging Face's RMSNorm of a half-precision `x`: normalized in float32, cast back, then
/// times the weight (`w * rms_norm(x.astype(f32)).astype(x.dtype)`): `mx.fast.rms_norm(x, w)`,
/// which computes in float32 and rounds once. `w` is a feature vector of x's dtype.
fn rms_norm_after_cast(cx: &mut Ctx) -> Option<Id> {
    let dtype = cx.value("?x")?.dtype;
    let ok = dtype.is_float()
        && casts_to(cx, "?c1", Dtype::Float32)
        && casts_to(cx, "?c2", dtype)
        && cx.scalar("?one") == Some(1.0)
        && is_feature_vector(cx, "?w");
    let e = cx.args("?e")?.first()?.clone();
    ok.then(|| {
        let (x, w) = (cx.id("?x"), cx.id("?w"));
        cx.op(Op::RMSNorm, &[e], &[x, w])
    })
}

/// Whether the `AsType` arguments `var` cast to `dtype`.
fn casts_to(cx: &Ctx, var: &str, dtype: Dtype) -> bool {
    cx.args(var).and_then(|a| a.first()) == Some(&Arg::Dtype(dtype))
}

fn layer_norm(cx: &mut Ctx, weighted: bool, biased: bool) -> Option<Id> {
    let ok = float_x(cx)
        && cx.args("?r")? == [Arg::Bool(true)]
        && reduces_last(cx, "?r1", 2)
        && reduces_last(cx, "?r2", 2)
        && is_mean_scale(cx, "?n1", false)
        && is_mean_scale(cx, "?n2", false)
        && (!weighted || is_feature_vector(cx, "?w"))
        && (!biased || is_feature_vector(cx, "?b"));
    if !ok {
        return None;
    }
    let e = eps(cx)?;
    let dtype = cx.value("?x")?.dtype;
    let x = cx.id("?x");
    let w = if weighted { cx.id("?w") } else { cx.scalar_const(1.0, dtype) };
    let b = if biased { cx.id("?b") } else { cx.scalar_const(0.0, dtype) };
    Some(cx.op(Op::LayerNorm, &[Arg::Float(e)], &[x, w, b]))
}

fn softmax(cx: &mut Ctx, shifted: bool) -> Option<Id> {
    let ok = float_x(cx) && reduces_last(cx, "?rs", 2) && (!shifted || reduces_last(cx, "?rm", 5));
    if !ok {
        return None;
    }
    let x = cx.id("?x");
    Some(cx.op(Op::Softmax, &[Arg::Bool(false)], &[x]))
}

/// `exp((x - m) - log(sum(exp(x - m))))` over the last axis, `m` the max: a written log-softmax
/// exponentiated. (Not `exp(x - logsumexp(x))`: on a row holding +inf, that is 0 where x is
/// finite, and softmax NaN.)
fn softmax_of_log(cx: &mut Ctx) -> Option<Id> {
    let natural = cx.args("?lb").and_then(|a| const_int(a, 0)) == Some(2); // MLX's Log: base 2 is e
    let ok = float_x(cx) && reduces_last(cx, "?rm", 5) && reduces_last(cx, "?rs", 2) && natural;
    if !ok {
        return None;
    }
    let x = cx.id("?x");
    Some(cx.op(Op::Softmax, &[Arg::Bool(false)], &[x]))
}

#[derive(Clone, Copy, PartialEq)]
enum Mask {
    None,
    Additive,
    /// `where(causal, scores, fill)`. (Not `scores + where(causal, 0, fill)`: there a NaN
    /// score above the diagonal makes its row NaN, and SDPA's causal flag never reads it.)
    Causal,
    // Not `where(keep, scores, -inf)` for any boolean `keep`: MLX's SDPA fills a boolean mask
    // with the dtype's lowest finite value where it falls back to plain operations, so a row
    // masked whole is NaN in the written form and the mean of v there.
}

/// The attention pattern around `scores`, masked as `mask` says, its softmax between two
/// casts (`?c1`, `?c2`) where `cast`.
fn sdpa(scores: &str, mask: Mask, cast: bool) -> String {
    let masked = match mask {
        Mask::None => scores.to_string(),
        Mask::Additive => format!("(Add {scores} ?mask)"),
        Mask::Causal => format!("(Select {CAUSAL} {scores} ?fill)"),
    };
    let softmax = if cast {
        format!("(AsType ?c2 (Softmax ?p (AsType ?c1 {masked})))")
    } else {
        format!("(Softmax ?p {masked})")
    };
    format!("(Matmul {softmax} ?v)")
}

/// `softmax(q k^T s [+ mask]) v` with q `[B,Hq,T,D]`, k `[B,Hk,S,D]`, v `[B,Hk,S,Dv]`, in the
/// form the pattern's variables say: the scores multiplied by `?s` or divided by `?d` (a
/// constant), masked by `?mask` (added) or `?fill` (causal `where`), the softmax cast to
/// float32 (`?c1`) and back to q's dtype (`?c2`).
fn attention(cx: &mut Ctx) -> Option<Id> {
    let mask = if cx.bound("?mask") {
        Mask::Additive
    } else if cx.bound("?fill") {
        Mask::Causal
    } else {
        Mask::None
    };
    let dtype = cx.value("?q")?.dtype;
    if cx.bound("?c1") && !(casts_to(cx, "?c1", Dtype::Float32) && casts_to(cx, "?c2", dtype)) {
        return None;
    }
    let (q, v) = (cx.shape("?q")?.to_vec(), cx.shape("?v")?.to_vec());
    // k^T is `k.swapaxes(-1, -2)`, or any transpose that is one after another (`[0, 2, 3, 1]`
    // of k laid out `[B, S, H, D]`, as `einsum("bqhd,bkhd->bhqk")` traces): SDPA takes
    // `k.transpose(0, 2, 1, 3)` then.
    let t = const_list(cx.args("?t")?, 0)?;
    let to_k: Vec<i64> = if t.len() == 4 { vec![t[0], t[1], t[3], t[2]] } else { return None };
    let written_k = cx.shape("?k")?;
    let k: Vec<i64> = to_k.iter().map(|i| written_k.get(*i as usize).copied()).collect::<Option<_>>()?;
    let ok = q.len() == 4
        && k.len() == 4
        && v.len() == 4
        && q[0] == k[0]
        && k[0] == v[0]
        && k[1] == v[1]
        && q[1] % k[1] == 0
        && q[3] == k[3]
        && k[2] == v[2]
        && cx.value("?q")?.dtype.is_float();
    let scale = if cx.bound("?d") { 1.0 / cx.folded_scalar("?d")? } else { cx.folded_scalar("?s")? };
    if !ok || !scale.is_finite() || scale == 0.0 {
        return None;
    }
    let k_id = match to_k == [0, 1, 2, 3] {
        true => cx.id("?k"),
        false => cx.op(Op::Transpose, &[Arg::ints(&to_k)], &[cx.id("?k")]),
    };
    let mut inputs = vec![cx.id("?q"), k_id, cx.id("?v")];
    match mask {
        Mask::None => {}
        Mask::Additive => {
            let m = cx.value("?mask")?;
            let fits = m.shape.len() <= 4
                && m.shape.iter().rev().zip([k[2], q[2], q[1], q[0]]).all(|(a, b)| *a == 1 || *a == b);
            if !fits || m.dtype != cx.value("?q")?.dtype {
                return None;
            }
            inputs.push(cx.id("?mask"));
        }
        Mask::Causal => {
            if !(is_causal(cx, q[2]) && q[2] == k[2] && cx.scalar("?fill").is_some_and(|f| f <= -1e4)) {
                return None;
            }
        }
    }
    let args = [Arg::Float(scale), Arg::Bool(mask == Mask::Causal), Arg::Bool(false), Arg::Bool(false)];
    Some(cx.op(Op::ScaledDotProductAttention, &args, &inputs))
}

/// `arange(T)[:, None] >= arange(T)[None, :]`.
fn is_causal(cx: &Ctx, t: i64) -> bool {
    let e = |v: &str| cx.args(v).and_then(|a| const_list(a, 0));
    let range = cx.shape("?ar").is_some_and(|s| s == [t]) && arange_is_iota(cx);
    e("?e1") == Some(vec![1]) && e("?e2") == Some(vec![0]) && range
}

fn arange_is_iota(cx: &Ctx) -> bool {
    let id = cx.id("?ar");
    cx.g[id].nodes.iter().any(|n| {
        let (args, inputs) = super::node_parts(cx.g, n);
        let exact = crate::egraph::shape::counts_exactly(args);
        n.op() == Some(Op::Arange) && inputs.is_empty() && crate::egraph::shape::is_iota(args) && exact
    })
}

/// GQA expanded by `repeat(k, G, axis=1)` is what SDPA does by itself with k's own heads
/// (a mask, `masked`, stays as it is: SDPA takes masks over q's heads).
fn gqa_unrepeat(cx: &mut Ctx, masked: bool) -> Option<Id> {
    let args = cx.args("?a")?.to_vec();
    let one_of = |v: &str| cx.args(v).and_then(|a| const_list(a, 0)) == Some(vec![2]);
    let (k, v, q) = (cx.shape("?k")?.to_vec(), cx.shape("?v")?.to_vec(), cx.shape("?q")?.to_vec());
    let ok = one_of("?e1")
        && one_of("?e2")
        && k.len() == 4
        && v.len() == 4
        && q.len() == 4
        && q[1] % k[1] == 0
        && k[1] == v[1];
    if !ok {
        return None;
    }
    // k[:, :, None] broadcast to [B, Hk, G, S, D] and merged to [B, Hk * G, S, D]: head h reads
    // kv head h / G, as SDPA does (not keys tiled along S, nor a batch broadcast).
    let e = cx.lookup(Op::ExpandDims, &["?e1", "?k"])?;
    let merged =
        |s: &str, x: &[i64]| cx.args(s).and_then(|a| cx.traced_list(a, 0)) == Some(vec![x[0], q[1], x[2], x[3]]);
    if e != [k[0], k[1], 1, k[2], k[3]] || !merged("?s1", &k) || !merged("?s2", &v) {
        return None;
    }
    let mut inputs = vec![cx.id("?q"), cx.id("?k"), cx.id("?v")];
    inputs.extend(masked.then(|| cx.id("?mask")));
    Some(cx.op(Op::ScaledDotProductAttention, &args, &inputs))
}

/// `1/(1+exp(-x))` as `mx.sigmoid(x)`; `x/(1+exp(-x))` as `x * mx.sigmoid(x)` (SiLU).
/// Both agree with the hand-written form at x = ±inf. (`exp(x)/(exp(x)+1)` does not:
/// it is NaN at +inf, and verification rejects a candidate finite there.)
fn sigmoid(cx: &mut Ctx, ones: &[&str], silu: bool) -> Option<Id> {
    if !float_x(cx) || !ones.iter().all(|v| cx.scalar(v) == Some(1.0)) {
        return None;
    }
    let x = cx.id("?x");
    let s = cx.op(Op::Sigmoid, &[], &[x]);
    Some(if silu { cx.op(Op::Multiply, &[], &[x, s]) } else { s })
}

/// GELU's tanh form `0.5 x (1 + tanh(u))` as `x * sigmoid(2u)` (the same function:
/// `(1 + tanh(u)) / 2 = sigmoid(2u)`), two passes fewer; equal at u = ±inf too.
fn gelu_tanh(cx: &mut Ctx) -> Option<Id> {
    if !float_x(cx)
        || cx.scalar("?half") != Some(0.5)
        || cx.scalar("?one") != Some(1.0)
        || cx.value("?u")? != cx.value("?x")?
    {
        return None;
    }
    // u + u, not u * 2: exact in floats and in the field check, and no scalar to fold.
    let (x, u) = (cx.id("?x"), cx.id("?u"));
    let u2 = cx.op(Op::Add, &[], &[u, u]);
    let s = cx.op(Op::Sigmoid, &[], &[u2]);
    Some(cx.op(Op::Multiply, &[], &[x, s]))
}

/// RoPE by hand: the two halves of `x` (or its even and odd features, `traditional`)
/// rotated by `cos`/`sin` of an angle table that depends on no input, where the table
/// is `scale * (offset + t) * base^(-i/half)` for position t along axis -2.
fn rope(cx: &mut Ctx, traditional: bool) -> Option<Id> {
    let (x, half) = rotated_halves(cx, traditional)?;
    let xv = cx.g[x].data.value()?.clone();
    let rank = xv.shape.len();
    let axis = const_int(cx.args("?ax")?, 0)?;
    let stacked_axis = if traditional { rank as i64 } else { rank as i64 - 1 };
    if !(axis == stacked_axis || axis == -1) || !xv.dtype.is_float() || rank < 3 {
        return None;
    }
    if traditional
        && (cx.out().value()?.shape != xv.shape || !expands_last(cx, "?e1", rank) || !expands_last(cx, "?e2", rank))
    {
        return None;
    }
    let theta = angles(cx, x)?;
    rope_node(cx, x, half, traditional, &fold(cx.g, theta)?)
}

/// The angle class that `?c` is the cosine and `?s` the sine of, with its positions
/// following `x`'s axis -2.
fn angles(cx: &Ctx, x: Id) -> Option<Id> {
    let theta = trig_angle(cx, "?c", Op::Cos)?;
    (trig_angle(cx, "?s", Op::Sin)? == theta && positions_follow(cx, theta, x)).then_some(theta)
}

/// RoPE as Hugging Face ports write it: `x * cos(emb) + rotate_half(x) * sin(emb)`, with
/// `rotate_half(x) = concat(-x[..., half:], x[..., :half])` and `emb` the angle table
/// repeated for both halves.
fn rope_rotate_half(cx: &mut Ctx) -> Option<Id> {
    let (x, half) = rotated_halves(cx, false)?;
    let xv = cx.g[x].data.value()?.clone();
    let rank = xv.shape.len() as i64;
    let axis = const_int(cx.args("?ax")?, 0)?;
    // mx.fast.rope takes arrays of 3 axes or more.
    if cx.g.find(cx.id("?x")) != x || !(axis == rank - 1 || axis == -1) || !xv.dtype.is_float() || rank < 3 {
        return None;
    }
    if cx.out().value()?.shape != xv.shape {
        return None;
    }
    let table = first_of_equal_halves(&fold(cx.g, angles(cx, x)?)?, half)?;
    rope_node(cx, x, half, false, &table)
}

/// The first half of a table's last axis, where the second half repeats it exactly.
fn first_of_equal_halves(t: &Table, half: usize) -> Option<Table> {
    let mut shape = t.shape.clone();
    if shape.last() != Some(&(2 * half)) {
        return None;
    }
    *shape.last_mut()? = half;
    let rows: Vec<&[f64]> = t.data.chunks(2 * half).collect();
    rows.iter()
        .all(|r| r[..half] == r[half..])
        .then(|| Table { shape, data: rows.iter().flat_map(|r| r[..half].to_vec()).collect() })
}

/// `mx.fast.rope` of `x` for an angle table `[.., T, half]` of RoPE's form; `None` otherwise.
fn rope_node(cx: &mut Ctx, x: Id, half: usize, traditional: bool, table: &Table) -> Option<Id> {
    let xv = cx.g[x].data.value()?.clone();
    let rank = xv.shape.len();
    let (base, scale, offset) = fit_angles(table, xv.shape[rank - 2] as usize, half)?;
    let args = [
        Arg::Int(superopt_ir::Dim::constant(2 * half as i64)),
        Arg::Bool(traditional),
        Arg::Float(base),
        Arg::Float(scale),
        Arg::Bool(true),
    ];
    let off = cx.scalar_const(offset, Dtype::Int32);
    Some(cx.op(Op::RoPE, &args, &[x, off]))
}

/// `x` and `half` when `?x1`, `?x2` are the halves of `x`'s last axis (or its even and
/// odd entries) and together cover all of it.
fn rotated_halves(cx: &Ctx, traditional: bool) -> Option<(Id, usize)> {
    let (x, a1) = slice_of(cx, "?x1")?;
    let (x2, a2) = slice_of(cx, "?x2")?;
    let d = *cx.g[x].data.value()?.shape.last()?;
    let rank = cx.g[x].data.value()?.shape.len();
    let half = d / 2;
    let whole = |a: &[Vec<i64>], first: i64, last: i64, step: i64| {
        a[0][..rank - 1].iter().all(|v| *v == 0)
            && a[0][rank - 1] == first
            && a[1][rank - 1] == last
            && a[2][..rank - 1].iter().all(|v| *v == 1)
            && a[2][rank - 1] == step
    };
    let covers = if traditional {
        whole(&a1, 0, d, 2) && whole(&a2, 1, d, 2)
    } else {
        whole(&a1, 0, half, 1) && whole(&a2, half, d, 1)
    };
    let full =
        cx.shape("?x1")? == cx.shape("?x2")? && cx.shape("?x1")?[..rank - 1] == cx.g[x].data.value()?.shape[..rank - 1];
    (x == x2 && d % 2 == 0 && half > 0 && covers && full).then_some((x, half as usize))
}

/// The sliced array and the slice's [start, end, strides] at the traced size, from a `Slice` in `var`'s class.
fn slice_of(cx: &Ctx, var: &str) -> Option<(Id, Vec<Vec<i64>>)> {
    cx.g[cx.id(var)].nodes.iter().find_map(|n| {
        let (args, inputs) = node_parts(cx.g, n);
        if n.op() != Some(Op::Slice) || inputs.len() != 1 {
            return None;
        }
        let lists = (0..3).map(|i| cx.traced_list(args, i)).collect::<Option<Vec<_>>>()?;
        Some((cx.g.find(inputs[0]), lists))
    })
}

fn expands_last(cx: &Ctx, var: &str, rank: usize) -> bool {
    cx.args(var).and_then(|a| const_list(a, 0)).is_some_and(|e| e == [rank as i64] || e == [-1])
}

/// The angle class under `op` (`Cos`/`Sin`) in `var`'s class, directly or under a broadcast.
fn trig_angle(cx: &Ctx, var: &str, op: Op) -> Option<Id> {
    let id = cx.id(var);
    find_op(cx.g, id, op).or_else(|| find_op(cx.g, find_op(cx.g, id, Op::Broadcast)?[0], op)).map(|ins| ins[0])
}

/// The table is `[T, half]` (after leading 1s) with T following `x`'s axis -2 at every size.
fn positions_follow(cx: &Ctx, theta: Id, x: Id) -> bool {
    let (t, xd) = (&cx.g[theta].data, &cx.g[x].data);
    let (Some(td), Some(xdims), Some(tv)) = (&t.dims, &xd.dims, t.value()) else { return false };
    let r = tv.shape.len();
    r >= 2 && tv.shape[..r - 2].iter().all(|n| *n == 1) && td[r - 2] == xdims[xdims.len() - 2]
}

/// (base, scale, offset) with `table[t][i] = scale * (offset + t) * base^(-i/half)`, all
/// entries within 1e-9 relative; `None` when the table is not such a table.
fn fit_angles(table: &Table, positions: usize, half: usize) -> Option<(f64, f64, f64)> {
    let r = table.shape.len();
    if r < 2 || table.shape[r - 2] != positions || table.shape[r - 1] != half || positions < 2 || half < 2 {
        return None;
    }
    let at = |t: usize, i: usize| table.data[t * half + i];
    let scale = at(1, 0) - at(0, 0);
    let offset = (at(0, 0) / scale).round();
    let t = if at(1, 0) != 0.0 { 1 } else { 0 };
    let base = (at(t, 1) / at(t, 0)).powf(-(half as f64));
    let sane = scale.is_finite() && scale > 0.0 && (0.0..1e9).contains(&offset) && base.is_finite() && base > 1.0;
    let fits = (0..positions).all(|t| {
        (0..half).all(|i| {
            let want = scale * (offset + t as f64) * base.powf(-(i as f64) / half as f64);
            (at(t, i) - want).abs() <= 1e-9 * want.abs().max(1.0)
        })
    });
    (sane && fits).then_some((round_f32(base), round_f32(scale), offset))
}

/// The f32 nearest `v` when it is that close (bases like 10000 fitted to 9999.999999).
fn round_f32(v: f64) -> f64 {
    let r = v.round();
    if (v - r).abs() <= 1e-6 * r.abs().max(1.0) {
        r
    } else {
        v as f32 as f64
    }
}

#[cfg(test)]
mod tests;
