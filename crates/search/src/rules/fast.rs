//! Hand-written patterns replaced by MLX's fused primitives: `mx.fast.rms_norm`,
//! `mx.fast.layer_norm`, `mx.softmax`, `mx.fast.scaled_dot_product_attention`
//! (scale, GQA by repeat, causal mask by `arange` comparison, additive masks).
//! They round differently from the hand-written form; verification judges that,
//! and timing decides whether they stay.
//! May touch: the whole matched subgraph, replaced by one fused node.

use super::{const_int, const_list, same_f32, Ctx, Family::Fast, Rule};
use egg::Id;
use superopt_ir::Arg;

const RMS: &str = "(Sqrt ?r (Add (Multiply (Reduce ?red (Multiply ?x ?x)) ?n) ?eps))";
const RMS_DIV: &str = "(Sqrt ?r (Add (Divide (Reduce ?red (Multiply ?x ?x)) ?n) ?eps))";
const CENTERED: &str = "(Subtract ?x (Multiply (Reduce ?r1 ?x) ?n1))";
const SCORES: &str = "(Multiply (Matmul ?q (Transpose ?t ?k)) ?s)";

fn ln_core() -> String {
    format!("(Multiply {CENTERED} (Sqrt ?r (Add (Multiply (Reduce ?r2 (Multiply {CENTERED} {CENTERED})) ?n2) ?eps)))")
}

pub fn rules() -> Vec<Rule> {
    let ln = ln_core();
    vec![
        Rule::build(Fast, "rms-norm", &format!("(Multiply (Multiply ?x {RMS}) ?w)"), |cx| rms_norm(cx, false, true)),
        Rule::build(Fast, "rms-norm-divide", &format!("(Multiply (Multiply ?x {RMS_DIV}) ?w)"), |cx| rms_norm(cx, true, true)),
        Rule::build(Fast, "rms-norm-no-weight", &format!("(Multiply ?x {RMS})"), |cx| rms_norm(cx, false, false)),
        Rule::build(Fast, "layer-norm", &format!("(Add (Multiply {ln} ?w) ?b)"), |cx| layer_norm(cx, true, true)),
        Rule::build(Fast, "layer-norm-no-bias", &format!("(Multiply {ln} ?w)"), |cx| layer_norm(cx, true, false)),
        Rule::build(Fast, "layer-norm-no-affine", &ln, |cx| layer_norm(cx, false, false)),
        Rule::build(Fast, "softmax", "(Divide (Exp (Subtract ?x (Reduce ?rm ?x))) (Reduce ?rs (Exp (Subtract ?x (Reduce ?rm ?x)))))", |cx| softmax(cx, true)),
        Rule::build(Fast, "softmax-unshifted", "(Divide (Exp ?x) (Reduce ?rs (Exp ?x)))", |cx| softmax(cx, false)),
        Rule::build(Fast, "sdpa", &format!("(Matmul (Softmax ?p {SCORES}) ?v)"), |cx| attention(cx, Mask::None)),
        Rule::build(Fast, "sdpa-additive-mask", &format!("(Matmul (Softmax ?p (Add {SCORES} ?mask)) ?v)"), |cx| attention(cx, Mask::Additive)),
        Rule::build(
            Fast,
            "sdpa-causal",
            &format!("(Matmul (Softmax ?p (Select (GreaterEqual (ExpandDims ?e1 ?ar) (ExpandDims ?e2 ?ar)) {SCORES} ?fill)) ?v)"),
            |cx| attention(cx, Mask::Causal),
        ),
        Rule::build(
            Fast,
            "sdpa-gqa-unrepeat",
            "(ScaledDotProductAttention ?a ?q (Reshape ?s1 (Broadcast ?b1 (ExpandDims ?e1 ?k))) (Reshape ?s2 (Broadcast ?b2 (ExpandDims ?e2 ?v))))",
            gqa_unrepeat,
        ),
    ]
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
    Some(cx.op("RMSNorm", &[Arg::Float(e)], &[x, w]))
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
    Some(cx.op("LayerNorm", &[Arg::Float(e)], &[x, w, b]))
}

fn softmax(cx: &mut Ctx, shifted: bool) -> Option<Id> {
    let ok = float_x(cx) && reduces_last(cx, "?rs", 2) && (!shifted || reduces_last(cx, "?rm", 5));
    if !ok {
        return None;
    }
    let x = cx.id("?x");
    Some(cx.op("Softmax", &[Arg::Bool(false)], &[x]))
}

#[derive(Clone, Copy, PartialEq)]
enum Mask {
    None,
    Additive,
    Causal,
}

/// `softmax(q k^T s [+ mask]) v` with q `[B,Hq,T,D]`, k `[B,Hk,S,D]`, v `[B,Hk,S,Dv]`.
fn attention(cx: &mut Ctx, mask: Mask) -> Option<Id> {
    let (q, k, v) = (cx.shape("?q")?.to_vec(), cx.shape("?k")?.to_vec(), cx.shape("?v")?.to_vec());
    let t = const_list(cx.args("?t")?, 0)?;
    let ok = q.len() == 4
        && k.len() == 4
        && v.len() == 4
        && t == [0, 1, 3, 2]
        && q[0] == k[0]
        && k[0] == v[0]
        && k[1] == v[1]
        && q[1] % k[1] == 0
        && q[3] == k[3]
        && k[2] == v[2]
        && cx.value("?q")?.dtype.is_float();
    let scale = cx.scalar("?s")?;
    if !ok || !scale.is_finite() {
        return None;
    }
    let mut inputs = vec![cx.id("?q"), cx.id("?k"), cx.id("?v")];
    match mask {
        Mask::None => {}
        Mask::Additive => {
            let m = cx.value("?mask")?;
            let fits = m.shape.len() <= 4 && m.shape.iter().rev().zip([k[2], q[2], q[1], q[0]]).all(|(a, b)| *a == 1 || *a == b);
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
    Some(cx.op("ScaledDotProductAttention", &args, &inputs))
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
        let num = |a: Option<&Arg>| match a {
            Some(Arg::Float(f)) => Some(*f),
            Some(Arg::Int(d)) => d.as_const().map(|v| v as f64),
            _ => None,
        };
        n.op_name() == Some("Arange") && inputs.is_empty() && num(args.first()) == Some(0.0) && num(args.get(2)) == Some(1.0)
    })
}

/// GQA expanded by `repeat(k, G, axis=1)` is what SDPA does by itself with k's own heads.
fn gqa_unrepeat(cx: &mut Ctx) -> Option<Id> {
    let args = cx.args("?a")?.to_vec();
    let one_of = |v: &str| cx.args(v).and_then(|a| const_list(a, 0)) == Some(vec![2]);
    let (k, v, q) = (cx.shape("?k")?.to_vec(), cx.shape("?v")?.to_vec(), cx.shape("?q")?.to_vec());
    let ok = one_of("?e1") && one_of("?e2") && k.len() == 4 && v.len() == 4 && q.len() == 4 && q[1] % k[1] == 0 && k[1] == v[1];
    if !ok {
        return None;
    }
    // k[:, :, None] broadcast to [B, Hk, G, S, D]: head h reads kv head h / G, as SDPA does.
    let e = cx.lookup("ExpandDims", &["?e1", "?k"])?;
    if e != [k[0], k[1], 1, k[2], k[3]] {
        return None;
    }
    let (qi, ki, vi) = (cx.id("?q"), cx.id("?k"), cx.id("?v"));
    Some(cx.op("ScaledDotProductAttention", &args, &[qi, ki, vi]))
}

#[cfg(test)]
mod tests;
