use super::super::testing::{has_op, ints, TestGraph};
use super::super::Family;
use egg::Id;
use egg::Language;
use superopt_ir::Op;

const ALL: [Family; 4] = Family::ALL;

/// `x * rsqrt(mean(x*x, -1) + eps) * w` as MLX exports it, with the reduction axis,
/// the mean's scale and the weight's shape as given.
fn rms(axis: i64, scale: f64, w_shape: &[i64]) -> (TestGraph, Id) {
    let (mut t, x) = TestGraph::new(&[&[8, 64], w_shape]);
    let sq = t.op(Op::Multiply, &[], &[x[0], x[0]]);
    let red_shape: Vec<i64> = if axis == 1 { vec![8, 1] } else { vec![1, 64] };
    let s = t.op(Op::Reduce, &[superopt_ir::Arg::Int(superopt_ir::Dim::constant(2)), ints(&[axis])], &[sq]);
    let n = t.scalar(scale, &red_shape);
    let mean = t.op(Op::Multiply, &[], &[s, n]);
    let eps = t.scalar(1e-5_f32 as f64, &red_shape);
    let a = t.op(Op::Add, &[], &[mean, eps]);
    let r = t.op(Op::Sqrt, &[superopt_ir::Arg::Bool(true)], &[a]);
    let rb = t.op(Op::Broadcast, &[ints(&[8, 64])], &[r]);
    let y = t.op(Op::Multiply, &[], &[x[0], rb]);
    let wb = t.op(Op::Broadcast, &[ints(&[8, 64])], &[x[1]]);
    let out = t.op(Op::Multiply, &[], &[y, wb]);
    (t, out)
}

#[test]
fn rms_norm_fires_on_the_exported_form() {
    let (t, out) = rms(1, 1.0 / 64.0, &[64]);
    let g = t.saturate(&ALL);
    assert!(has_op(&g, out, Op::RMSNorm));
}

#[test]
fn rms_norm_near_misses_do_not_fire() {
    for (axis, scale, w) in [(0, 1.0 / 8.0, &[64][..]), (1, 1.0 / 63.0, &[64]), (1, 1.0 / 64.0, &[8, 64])] {
        let (t, out) = rms(axis, scale, w);
        let g = t.saturate(&ALL);
        assert!(!has_op(&g, out, Op::RMSNorm), "axis {axis}, scale {scale}, weight {w:?}");
    }
}

/// Hugging Face's RMSNorm of a bfloat16 x: `w * rms_norm(x.astype(c1)).astype(c2)` (the
/// norm already MLX's, unweighted), w `[64]` of `w_dtype`.
fn rms_after_cast(c1: superopt_ir::Dtype, c2: superopt_ir::Dtype, w_dtype: superopt_ir::Dtype) -> (TestGraph, Id) {
    use superopt_ir::{Arg, Dtype};
    let (mut t, x) = TestGraph::typed(&[&[8, 64], &[64]], Dtype::Bfloat16);
    t.set_value(x[1], &[64], w_dtype);
    let x32 = t.op(Op::AsType, &[Arg::Dtype(c1)], &[x[0]]);
    let one = t.scalar(1.0, &[]);
    let n = t.op(Op::RMSNorm, &[Arg::Float(1e-6)], &[x32, one]);
    let back = t.op(Op::AsType, &[Arg::Dtype(c2)], &[n]);
    let out = t.op(Op::Multiply, &[], &[x[1], back]);
    (t, out)
}

#[test]
fn rms_norm_weighted_after_its_cast_back_fires() {
    use superopt_ir::Dtype::{Bfloat16, Float32};
    let (t, out) = rms_after_cast(Float32, Bfloat16, Bfloat16);
    let g = t.saturate(&ALL);
    let fused = |c: Id| {
        g[g.find(c)].nodes.iter().any(|n| n.op() == Some(Op::RMSNorm) && n.children()[1] == g.find(Id::from(0usize)))
    };
    assert!(fused(out), "mx.fast.rms_norm(x, w) on x itself");
}

#[test]
fn rms_norm_after_other_casts_does_not_fire() {
    use superopt_ir::Dtype::{Bfloat16, Float16, Float32};
    // Normalized in float16 (coarser than MLX's float32), cast to float32 (not back), or a
    // float32 weight (the product is float32).
    for (c1, c2, w) in [(Float16, Bfloat16, Bfloat16), (Float32, Float32, Bfloat16), (Float32, Bfloat16, Float32)] {
        let (t, out) = rms_after_cast(c1, c2, w);
        let g = t.saturate(&ALL);
        let on_x = g[g.find(out)].nodes.iter().any(|n| n.op() == Some(Op::RMSNorm));
        assert!(!on_x, "{c1:?} {c2:?} {w:?}");
    }
}

fn softmax(max_axis: i64, sum_axis: i64) -> (TestGraph, Id) {
    let (mut t, [_, e, s]) = shifted_exp_sum(max_axis, sum_axis);
    let sb = t.op(Op::Broadcast, &[ints(&[4, 32])], &[s]);
    let out = t.op(Op::Divide, &[], &[e, sb]);
    (t, out)
}

/// On x [4, 32]: `z = x - max(x, max_axis)`, `exp(z)` and its sum over `sum_axis`.
fn shifted_exp_sum(max_axis: i64, sum_axis: i64) -> (TestGraph, [Id; 3]) {
    let (mut t, x) = TestGraph::new(&[&[4, 32]]);
    let red = |k: i64, a: i64| vec![superopt_ir::Arg::Int(superopt_ir::Dim::constant(k)), ints(&[a])];
    let m = t.op(Op::Reduce, &red(5, max_axis), &[x[0]]);
    let mb = t.op(Op::Broadcast, &[ints(&[4, 32])], &[m]);
    let z = t.op(Op::Subtract, &[], &[x[0], mb]);
    let e = t.op(Op::Exp, &[], &[z]);
    let s = t.op(Op::Reduce, &red(2, sum_axis), &[e]);
    (t, [z, e, s])
}

#[test]
fn softmax_fires_on_the_last_axis_only() {
    let (t, out) = softmax(1, 1);
    assert!(has_op(&t.saturate(&ALL), out, Op::Softmax));
    let (t, out) = softmax(0, 0);
    assert!(!has_op(&t.saturate(&ALL), out, Op::Softmax), "softmax over axis 0 is not mx.softmax's");
    // Max over another axis than the sum: still softmax(x - m) over the last axis, never softmax(x).
    let (t, out) = softmax(0, 1);
    let g = t.saturate(&ALL);
    let x = g.find(Id::from(0usize));
    assert!(!g[g.find(out)].nodes.iter().any(|n| n.op() == Some(Op::Softmax) && g.find(n.children()[1]) == x));
}

/// Naive attention: q [1,8,T,16], k/v [1,2,T,16] repeated 4x, scaled, causal by `>=` (or `>`).
fn attention(causal_op: Op, scale: f64, perm: &[i64]) -> (TestGraph, Id) {
    masked_attention(causal_op, scale, perm, None)
}

/// As [`attention`]; with `added: Some(z)`, the mask is added: `scores + where(causal, z, fill)`.
fn masked_attention(causal_op: Op, scale: f64, perm: &[i64], added: Option<f64>) -> (TestGraph, Id) {
    attention_by_range(causal_op, scale, perm, added, None)
}

/// As [`masked_attention`], its arange of `dtype` as import records one (a fourth argument).
fn attention_by_range(
    causal_op: Op,
    scale: f64,
    perm: &[i64],
    added: Option<f64>,
    dtype: Option<superopt_ir::Dtype>,
) -> (TestGraph, Id) {
    let (mut t, x) = TestGraph::new(&[&[1, 8, 16, 16], &[1, 2, 16, 16], &[1, 2, 16, 16]]);
    let rep = |t: &mut TestGraph, k: Id| {
        let e = t.op(Op::ExpandDims, &[ints(&[2])], &[k]);
        let b = t.op(Op::Broadcast, &[ints(&[1, 2, 4, 16, 16])], &[e]);
        t.op(Op::Reshape, &[ints(&[1, 8, 16, 16])], &[b])
    };
    let (k, v) = (rep(&mut t, x[1]), rep(&mut t, x[2]));
    let kt = t.op(Op::Transpose, &[ints(perm)], &[k]);
    let qk = t.op(Op::Matmul, &[], &[x[0], kt]);
    let s = t.scalar(scale, &[1, 8, 16, 16]);
    let scores = t.op(Op::Multiply, &[], &[qk, s]);
    let f = |v: f64| superopt_ir::Arg::Float(v);
    let mut range = vec![f(0.0), f(16.0), f(1.0)];
    range.extend(dtype.map(superopt_ir::Arg::Dtype));
    let ar = t.op(Op::Arange, &range, &[]);
    t.set_value(ar, &[16], dtype.unwrap_or(superopt_ir::Dtype::Int32));
    let rows = t.op(Op::ExpandDims, &[ints(&[1])], &[ar]);
    let rows = t.op(Op::Broadcast, &[ints(&[16, 16])], &[rows]);
    let cols = t.op(Op::ExpandDims, &[ints(&[0])], &[ar]);
    let cols = t.op(Op::Broadcast, &[ints(&[16, 16])], &[cols]);
    let m = t.op(causal_op, &[], &[rows, cols]);
    let mb = t.op(Op::Broadcast, &[ints(&[1, 8, 16, 16])], &[m]);
    let fill = t.scalar(-1e9, &[1, 8, 16, 16]);
    let masked = match added {
        None => t.op(Op::Select, &[], &[mb, scores, fill]),
        Some(z) => {
            let zero = t.scalar(z, &[1, 8, 16, 16]);
            let m = t.op(Op::Select, &[], &[mb, zero, fill]);
            t.op(Op::Add, &[], &[scores, m])
        }
    };
    let p = t.op(Op::Softmax, &[superopt_ir::Arg::Bool(false)], &[masked]);
    let out = t.op(Op::Matmul, &[], &[p, v]);
    (t, out)
}

#[test]
fn sdpa_fires_with_gqa_and_causal_mask() {
    let (t, out) = attention(Op::GreaterEqual, 0.25, &[0, 1, 3, 2]);
    let g = t.saturate(&ALL);
    let sdpa = g[g.find(out)].nodes.iter().find(|n| n.op() == Some(Op::ScaledDotProductAttention));
    let n = sdpa.expect("SDPA found");
    // The un-repeated form reads k and v at 2 heads.
    assert!(unrepeated_sdpa(&g, out, 4), "{n:?}");
}

/// Whether `out`'s class holds an SDPA of `inputs` children (its arguments, q, k, v, a mask)
/// that reads k at input 1's own heads.
fn unrepeated_sdpa(g: &crate::egraph::lang::EGraph, out: Id, inputs: usize) -> bool {
    let k = g.find(egg::Id::from(1usize));
    g[g.find(out)].nodes.iter().any(|n| {
        n.op() == Some(Op::ScaledDotProductAttention) && n.children().len() == inputs && g.find(n.children()[2]) == k
    })
}

#[test]
fn sdpa_near_misses_do_not_fire() {
    let (t, out) = attention(Op::Greater, 0.25, &[0, 1, 3, 2]);
    let g = t.saturate(&ALL);
    assert!(!has_op(&g, out, Op::ScaledDotProductAttention), "a causal mask off the diagonal");
}

/// A causal mask from a uint8 `arange(T)` is causal at the traced T (16) and not past 255,
/// where it wraps: never SDPA's causal flag. From an int32 one it is.
#[test]
fn a_causal_mask_from_a_wrapping_arange_is_not_sdpas_flag() {
    let (t, out) = attention_by_range(Op::GreaterEqual, 0.25, &[0, 1, 3, 2], None, Some(superopt_ir::Dtype::Uint8));
    let g = t.saturate(&ALL);
    assert!(!has_op(&g, out, Op::ScaledDotProductAttention), "uint8 positions wrap past 255");
    let (t, out) = attention_by_range(Op::GreaterEqual, 0.25, &[0, 1, 3, 2], None, Some(superopt_ir::Dtype::Int32));
    let g = t.saturate(&ALL);
    assert!(has_op(&g, out, Op::ScaledDotProductAttention), "int32 positions count exactly");
}

/// GQA attention laid out `[B, S, H, D]` as a Hugging Face port writes it: k and v repeated
/// on axis 2 (`mx.repeat(k, 4, axis=2)`, or `k_rep` tiled where `tiled`), scores by
/// `einsum("bqhd,bkhd->bhqk")` (k moved by `[0, 2, 3, 1]`), v moved to `[B, H, S, D]`.
fn einsum_attention(tiled: bool) -> (TestGraph, Id) {
    let (mut t, x) = TestGraph::new(&[&[1, 8, 16, 32], &[1, 16, 2, 32], &[1, 16, 2, 32]]);
    let rep = |t: &mut TestGraph, k: Id| {
        let (axis, expanded) = if tiled { (2, [1, 16, 4, 2, 32]) } else { (3, [1, 16, 2, 4, 32]) };
        let e = t.op(Op::ExpandDims, &[ints(&[axis])], &[k]);
        let b = t.op(Op::Broadcast, &[ints(&expanded)], &[e]);
        t.op(Op::Reshape, &[ints(&[1, 16, 8, 32])], &[b])
    };
    let (k, v) = (rep(&mut t, x[1]), rep(&mut t, x[2]));
    let kt = t.op(Op::Transpose, &[ints(&[0, 2, 3, 1])], &[k]);
    let vt = t.op(Op::Transpose, &[ints(&[0, 2, 1, 3])], &[v]);
    let qk = t.op(Op::Matmul, &[], &[x[0], kt]);
    let s = t.scalar(0.125, &[1, 8, 16, 16]);
    let scores = t.op(Op::Multiply, &[], &[qk, s]);
    let p = t.op(Op::Softmax, &[superopt_ir::Arg::Bool(false)], &[scores]);
    let out = t.op(Op::Matmul, &[], &[p, vt]);
    (t, out)
}

/// Whether `out`'s class holds an SDPA whose k is input 1 moved to `[B, H, S, D]`, unrepeated.
fn sdpa_of_moved_k(g: &crate::egraph::lang::EGraph, out: Id) -> bool {
    let moved_k = |c: Id| {
        g[g.find(c)]
            .nodes
            .iter()
            .any(|n| n.op() == Some(Op::Transpose) && g.find(n.children()[1]) == g.find(Id::from(1usize)))
    };
    g[g.find(out)].nodes.iter().any(|n| n.op() == Some(Op::ScaledDotProductAttention) && moved_k(n.children()[2]))
}

#[test]
fn sdpa_fires_on_keys_laid_out_by_sequence_and_unrepeats_them() {
    let (t, out) = einsum_attention(false);
    let g = t.saturate(&ALL);
    assert!(has_op(&g, out, Op::ScaledDotProductAttention));
    assert!(sdpa_of_moved_k(&g, out), "k moved to [B, H, S, D] at its own 2 heads");
}

#[test]
fn keys_tiled_not_repeated_are_not_unrepeated() {
    // Head h reads kv head h % 2 (a tiling), not h / 4: SDPA takes the tiled k as it is.
    let (t, out) = einsum_attention(true);
    let g = t.saturate(&ALL);
    assert!(has_op(&g, out, Op::ScaledDotProductAttention));
    assert!(!sdpa_of_moved_k(&g, out));
}

/// An added causal mask stays an added mask: a NaN score above the diagonal makes its row
/// NaN there (NaN + -inf), which SDPA's causal flag, never reading it, would not.
#[test]
fn an_added_causal_mask_is_passed_to_sdpa_not_made_its_causal_flag() {
    let (t, out) = masked_attention(Op::GreaterEqual, 0.25, &[0, 1, 3, 2], Some(0.0));
    let g = t.saturate(&ALL);
    assert!(has_op(&g, out, Op::ScaledDotProductAttention) && !causal_sdpa(&g, out));
    // Its k and v un-repeated, the mask kept.
    assert!(unrepeated_sdpa(&g, out, 5));
}

fn causal_sdpa(g: &crate::egraph::lang::EGraph, out: Id) -> bool {
    g[g.find(out)].nodes.iter().any(|n| {
        n.op() == Some(Op::ScaledDotProductAttention)
            && crate::egraph::lang::args_of(g, n.children()[0]).is_some_and(|a| a[1] == superopt_ir::Arg::Bool(true))
    })
}

/// How a hand-written RoPE table may go wrong.
#[derive(Clone, Copy, PartialEq, Debug)]
enum RopeVariant {
    Right,
    /// Angles linear in i instead of geometric: not RoPE.
    LinearFrequencies,
    /// `x1*sin - x2*cos`: sin and cos swapped.
    Swapped,
    /// Halves of 24 + 40 features.
    Uneven,
}

/// RoPE on x [1,2,8,64] as MLX exports it: offset 3, base 500.
fn rope(variant: RopeVariant, traditional: bool) -> (TestGraph, Id) {
    use superopt_ir::{Arg, Dim, Dtype};
    let (mut t, x) = TestGraph::new(&[&[1, 2, 8, 64]]);
    let h = if variant == RopeVariant::Uneven { 24 } else { 32 };
    let f = |v: f64| Arg::Float(v);
    let pos = t.op(Op::Arange, &[f(3.0), Arg::Int(Dim::constant(11)), f(1.0)], &[]);
    t.set_value(pos, &[8], Dtype::Float32);
    let i = t.op(Op::Arange, &[f(0.0), Arg::Int(Dim::constant(32)), f(1.0)], &[]);
    t.set_value(i, &[32], Dtype::Float32);
    let inv = if variant == RopeVariant::LinearFrequencies {
        let s = t.scalar(0.01, &[32]);
        t.op(Op::Multiply, &[], &[i, s])
    } else {
        let half = t.scalar(32.0, &[32]);
        let e = t.op(Op::Divide, &[], &[i, half]);
        let base = t.scalar(500.0, &[32]);
        let p = t.op(Op::Power, &[], &[base, e]);
        let one = t.scalar(1.0, &[32]);
        t.op(Op::Divide, &[], &[one, p])
    };
    let col = t.op(Op::ExpandDims, &[ints(&[1])], &[pos]);
    let col = t.op(Op::Broadcast, &[ints(&[8, 32])], &[col]);
    let row = t.op(Op::ExpandDims, &[ints(&[0])], &[inv]);
    let row = t.op(Op::Broadcast, &[ints(&[8, 32])], &[row]);
    let theta = t.op(Op::Multiply, &[], &[col, row]);
    let (c, s) = (t.op(Op::Cos, &[], &[theta]), t.op(Op::Sin, &[], &[theta]));
    let (c, s) = if variant == RopeVariant::Swapped { (s, c) } else { (c, s) };
    let cb = t.op(Op::Broadcast, &[ints(&[1, 2, 8, 32])], &[c]);
    let sb = t.op(Op::Broadcast, &[ints(&[1, 2, 8, 32])], &[s]);
    let (x1, x2) = if traditional {
        let h = if variant == RopeVariant::Uneven { 62 } else { 64 };
        let x1 = t.op(Op::Slice, &[ints(&[0, 0, 0, 0]), ints(&[1, 2, 8, h]), ints(&[1, 1, 1, 2])], &[x[0]]);
        (x1, t.op(Op::Slice, &[ints(&[0, 0, 0, 1]), ints(&[1, 2, 8, 64]), ints(&[1, 1, 1, 2])], &[x[0]]))
    } else {
        let x1 = t.op(Op::Slice, &[ints(&[0, 0, 0, 0]), ints(&[1, 2, 8, h]), ints(&[1, 1, 1, 1])], &[x[0]]);
        (x1, t.op(Op::Slice, &[ints(&[0, 0, 0, h]), ints(&[1, 2, 8, 64]), ints(&[1, 1, 1, 1])], &[x[0]]))
    };
    let h = if traditional { 32 } else { h };
    for (id, w) in [(x1, h), (x2, 64 - h)] {
        t.set_value(id, &[1, 2, 8, w], Dtype::Float32);
    }
    let a = t.op(Op::Multiply, &[], &[x1, cb]);
    let b = t.op(Op::Multiply, &[], &[x2, sb]);
    let first = t.op(Op::Subtract, &[], &[a, b]);
    let a = t.op(Op::Multiply, &[], &[x1, sb]);
    let b = t.op(Op::Multiply, &[], &[x2, cb]);
    let second = t.op(Op::Add, &[], &[a, b]);
    if traditional {
        let first = t.op(Op::ExpandDims, &[ints(&[4])], &[first]);
        let second = t.op(Op::ExpandDims, &[ints(&[4])], &[second]);
        let pairs = t.op(Op::Concatenate, &[superopt_ir::Arg::Int(Dim::constant(4))], &[first, second]);
        t.set_value(pairs, &[1, 2, 8, 32, 2], Dtype::Float32);
        let out = t.op(Op::Reshape, &[ints(&[1, 2, 8, 64])], &[pairs]);
        return (t, out);
    }
    let out = t.op(Op::Concatenate, &[superopt_ir::Arg::Int(Dim::constant(3))], &[first, second]);
    t.set_value(out, &[1, 2, 8, 64], Dtype::Float32);
    (t, out)
}

#[test]
fn rope_fires_with_base_and_offset_read_from_the_table() {
    for traditional in [false, true] {
        let (t, out) = rope(RopeVariant::Right, traditional);
        let g = t.saturate(&ALL);
        let node = g[g.find(out)].nodes.iter().find(|n| n.op() == Some(Op::RoPE)).expect("RoPE found").clone();
        let (args, inputs) = super::super::node_parts(&g, &node);
        assert_eq!(args[0], superopt_ir::Arg::Int(superopt_ir::Dim::constant(64)));
        assert_eq!(
            args[1..4],
            [superopt_ir::Arg::Bool(traditional), superopt_ir::Arg::Float(500.0), superopt_ir::Arg::Float(1.0)]
        );
        assert_eq!(g[inputs[1]].data.scalar, Some(3.0), "offset");
    }
}

#[test]
fn rope_near_misses_do_not_fire() {
    for traditional in [false, true] {
        for v in [RopeVariant::LinearFrequencies, RopeVariant::Swapped, RopeVariant::Uneven] {
            let (t, out) = rope(v, traditional);
            assert!(!has_op(&t.saturate(&ALL), out, Op::RoPE), "{v:?}, traditional {traditional}");
        }
    }
}

/// `num / (one + exp(-x))` with `num` either a scalar `one` or `x` itself (SiLU).
fn logistic(one: f64, silu: bool) -> (TestGraph, Id) {
    let (mut t, x) = TestGraph::new(&[&[4, 8]]);
    let n = t.op(Op::Negative, &[], &[x[0]]);
    let e = t.op(Op::Exp, &[], &[n]);
    let c = t.scalar(one, &[4, 8]);
    let d = t.op(Op::Add, &[], &[c, e]);
    let num = if silu { x[0] } else { c };
    let out = t.op(Op::Divide, &[], &[num, d]);
    (t, out)
}

#[test]
fn sigmoid_and_silu_fire_on_the_hand_written_forms() {
    for silu in [false, true] {
        let (t, out) = logistic(1.0, silu);
        let g = t.saturate(&ALL);
        let ok = g[g.find(out)].nodes.iter().any(|n| match silu {
            true => n.op() == Some(Op::Multiply) && n.children().iter().any(|c| has_op(&g, *c, Op::Sigmoid)),
            false => n.op() == Some(Op::Sigmoid),
        });
        assert!(ok, "silu {silu}");
    }
}

#[test]
fn sigmoid_near_misses_do_not_fire() {
    // 2 / (2 + exp(-x)) is not a logistic.
    for silu in [false, true] {
        let (t, _) = logistic(2.0, silu);
        let g = t.saturate(&ALL);
        assert!(!g.classes().any(|c| c.nodes.iter().any(|n| n.op() == Some(Op::Sigmoid))), "silu {silu}");
    }
}

/// `(x * half) * (1 + tanh(u))`, u = x * 0.79.
fn gelu(half: f64) -> (TestGraph, Id) {
    let (mut t, x) = TestGraph::new(&[&[4, 8]]);
    let h = t.scalar(half, &[4, 8]);
    let xh = t.op(Op::Multiply, &[], &[x[0], h]);
    let c = t.scalar(0.79, &[4, 8]);
    let u = t.op(Op::Multiply, &[], &[x[0], c]);
    let th = t.op(Op::Tanh, &[], &[u]);
    let one = t.scalar(1.0, &[4, 8]);
    let a = t.op(Op::Add, &[], &[th, one]);
    let out = t.op(Op::Multiply, &[], &[xh, a]);
    (t, out)
}

#[test]
fn gelu_tanh_fires_and_a_wrong_half_does_not() {
    let sigmoid_product = |g: &crate::egraph::lang::EGraph, out: Id| {
        g[g.find(out)]
            .nodes
            .iter()
            .any(|n| n.op() == Some(Op::Multiply) && n.children().iter().any(|c| has_op(g, *c, Op::Sigmoid)))
    };
    let (t, out) = gelu(0.5);
    let g = t.saturate(&ALL);
    assert!(sigmoid_product(&g, out));
    let (t, out) = gelu(0.4);
    let g = t.saturate(&ALL);
    assert!(!sigmoid_product(&g, out));
}

/// `exp(x - logsumexp(x))` as MLX exports it; `other` takes the log-sum-exp of a second
/// input, `reversed` subtracts the other way round.
fn softmax_by_logsumexp(other: bool, reversed: bool) -> (TestGraph, Id) {
    let (mut t, x) = TestGraph::new(&[&[4, 32], &[4, 32]]);
    let lse = t.op(Op::LogSumExp, &[], &[x[usize::from(other)]]);
    let b = t.op(Op::Broadcast, &[ints(&[4, 32])], &[lse]);
    let z = if reversed { t.op(Op::Subtract, &[], &[b, x[0]]) } else { t.op(Op::Subtract, &[], &[x[0], b]) };
    let out = t.op(Op::Exp, &[], &[z]);
    (t, out)
}

/// Not softmax where a row holds +inf (0 where x is finite; softmax is NaN there).
#[test]
fn exp_of_x_minus_its_logsumexp_is_not_made_softmax() {
    for (other, reversed) in [(false, false), (true, false), (false, true)] {
        let (t, out) = softmax_by_logsumexp(other, reversed);
        assert!(!has_op(&t.saturate(&ALL), out, Op::Softmax), "other {other}, reversed {reversed}");
    }
}

/// `exp((x - m) - log(sum(exp(x - m))))`, m the max over `max_axis`, the log of `base`
/// (MLX's numbering: 0 two, 1 ten, 2 e).
fn softmax_by_log_written(max_axis: i64, base: i64) -> (TestGraph, Id) {
    let (mut t, [z, _, s]) = shifted_exp_sum(max_axis, 1);
    let l = t.op(Op::Log, &[superopt_ir::Arg::Int(superopt_ir::Dim::constant(base))], &[s]);
    let lb = t.op(Op::Broadcast, &[ints(&[4, 32])], &[l]);
    let d = t.op(Op::Subtract, &[], &[z, lb]);
    let out = t.op(Op::Exp, &[], &[d]);
    (t, out)
}

#[test]
fn exp_of_a_written_log_softmax_is_softmax() {
    let (t, out) = softmax_by_log_written(1, 2);
    assert!(has_op(&t.saturate(&ALL), out, Op::Softmax));
    for (axis, base) in [(1, 1), (1, 0), (0, 2)] {
        let (t, out) = softmax_by_log_written(axis, base);
        assert!(!has_op(&t.saturate(&ALL), out, Op::Softmax), "max axis {axis}, log base {base}");
    }
}

/// What unmasked attention's scores are divided by.
#[derive(Clone, Copy, Debug)]
enum Divisor {
    /// `sqrt(16)`, a table of no input: scale 1/4.
    SqrtOfConstant,
    /// An input: no constant scale.
    Input,
    /// Zero: no finite scale.
    Zero,
}

/// `softmax(q @ k.T / d) @ v` on [1,4,16,16] arrays, `d` as `divisor` says.
fn divided_attention(divisor: Divisor) -> (TestGraph, Id) {
    let (mut t, x) = TestGraph::new(&[&[1, 4, 16, 16], &[1, 4, 16, 16], &[1, 4, 16, 16], &[]]);
    let qk = scores_of(&mut t, x[0], x[1]);
    let d = match divisor {
        Divisor::SqrtOfConstant => {
            let c = t.scalar(16.0, &[]);
            t.op(Op::Sqrt, &[superopt_ir::Arg::Bool(false)], &[c])
        }
        Divisor::Input => x[3],
        Divisor::Zero => t.scalar(0.0, &[]),
    };
    let db = t.op(Op::Broadcast, &[ints(&[1, 4, 16, 16])], &[d]);
    let scores = t.op(Op::Divide, &[], &[qk, db]);
    let out = softmax_times(&mut t, scores, x[2]);
    (t, out)
}

#[test]
fn sdpa_fires_on_scores_divided_by_a_constant_only() {
    let (t, out) = divided_attention(Divisor::SqrtOfConstant);
    let g = t.saturate(&ALL);
    let sdpa = g[g.find(out)].nodes.iter().find(|n| n.op() == Some(Op::ScaledDotProductAttention));
    let args = crate::egraph::lang::args_of(&g, sdpa.expect("SDPA found").children()[0]).unwrap();
    assert_eq!(args[0], superopt_ir::Arg::Float(0.25), "the scale is 1 / sqrt(16)");
    for d in [Divisor::Input, Divisor::Zero] {
        let (t, out) = divided_attention(d);
        assert!(!has_op(&t.saturate(&ALL), out, Op::ScaledDotProductAttention), "{d:?}");
    }
}

/// RoPE as Hugging Face ports write it, on x [1,2,8,64]: `x * cos(emb) + rotate_half(x) * sin(emb)`,
/// `emb` the [8, 32] table (offset 3, base 500) repeated for both halves; `variant` says how it
/// goes wrong (`Uneven`: the table's halves differ, the second shifted by one position).
fn rope_rotate_half(variant: RopeVariant) -> (TestGraph, Id) {
    use superopt_ir::{Arg, Dim, Dtype};
    let (mut t, x) = TestGraph::new(&[&[1, 2, 8, 64]]);
    let f = |v: f64| Arg::Float(v);
    let table = |t: &mut TestGraph, start: f64| {
        let pos = t.op(Op::Arange, &[f(start), Arg::Int(Dim::constant(start as i64 + 8)), f(1.0)], &[]);
        t.set_value(pos, &[8], Dtype::Float32);
        let i = t.op(Op::Arange, &[f(0.0), Arg::Int(Dim::constant(32)), f(1.0)], &[]);
        t.set_value(i, &[32], Dtype::Float32);
        let half = t.scalar(32.0, &[32]);
        let e = t.op(Op::Divide, &[], &[i, half]);
        let base = t.scalar(500.0, &[32]);
        let p = t.op(Op::Power, &[], &[base, e]);
        let one = t.scalar(1.0, &[32]);
        let inv = t.op(Op::Divide, &[], &[one, p]);
        let col = t.op(Op::ExpandDims, &[ints(&[1])], &[pos]);
        let col = t.op(Op::Broadcast, &[ints(&[8, 32])], &[col]);
        let row = t.op(Op::ExpandDims, &[ints(&[0])], &[inv]);
        let row = t.op(Op::Broadcast, &[ints(&[8, 32])], &[row]);
        t.op(Op::Multiply, &[], &[col, row])
    };
    let theta = table(&mut t, 3.0);
    let second = if variant == RopeVariant::Uneven { table(&mut t, 4.0) } else { theta };
    let emb = t.op(Op::Concatenate, &[Arg::Int(Dim::constant(1))], &[theta, second]);
    t.set_value(emb, &[8, 64], Dtype::Float32);
    let (c, s) = (t.op(Op::Cos, &[], &[emb]), t.op(Op::Sin, &[], &[emb]));
    let (c, s) = if variant == RopeVariant::Swapped { (s, c) } else { (c, s) };
    let cb = t.op(Op::Broadcast, &[ints(&[1, 2, 8, 64])], &[c]);
    let sb = t.op(Op::Broadcast, &[ints(&[1, 2, 8, 64])], &[s]);
    let x1 = t.op(Op::Slice, &[ints(&[0, 0, 0, 0]), ints(&[1, 2, 8, 32]), ints(&[1, 1, 1, 1])], &[x[0]]);
    let x2 = t.op(Op::Slice, &[ints(&[0, 0, 0, 32]), ints(&[1, 2, 8, 64]), ints(&[1, 1, 1, 1])], &[x[0]]);
    for id in [x1, x2] {
        t.set_value(id, &[1, 2, 8, 32], Dtype::Float32);
    }
    let n = t.op(Op::Negative, &[], &[x2]);
    let rotated = t.op(Op::Concatenate, &[Arg::Int(Dim::constant(3))], &[n, x1]);
    t.set_value(rotated, &[1, 2, 8, 64], Dtype::Float32);
    let a = t.op(Op::Multiply, &[], &[x[0], cb]);
    let b = t.op(Op::Multiply, &[], &[rotated, sb]);
    let out = t.op(Op::Add, &[], &[a, b]);
    (t, out)
}

#[test]
fn rope_fires_on_rotate_half_and_not_on_its_near_misses() {
    let (t, out) = rope_rotate_half(RopeVariant::Right);
    let g = t.saturate(&ALL);
    let node = g[g.find(out)].nodes.iter().find(|n| n.op() == Some(Op::RoPE)).expect("RoPE found").clone();
    let (args, inputs) = super::super::node_parts(&g, &node);
    assert_eq!(
        args[1..4],
        [superopt_ir::Arg::Bool(false), superopt_ir::Arg::Float(500.0), superopt_ir::Arg::Float(1.0)]
    );
    assert_eq!(g[inputs[1]].data.scalar, Some(3.0), "offset");
    for v in [RopeVariant::Swapped, RopeVariant::Uneven] {
        let (t, out) = rope_rotate_half(v);
        assert!(!has_op(&t.saturate(&ALL), out, Op::RoPE), "{v:?}");
    }
}

/// bfloat16 `softmax((q @ k.T * 0.125).astype(f32)).astype(to) @ v`, the first cast to `from`.
fn attention_softmax_cast(from: superopt_ir::Dtype, to: superopt_ir::Dtype) -> (TestGraph, Id) {
    use superopt_ir::{Arg, Dtype};
    let (mut t, x) = TestGraph::typed(&[&[1, 4, 16, 16], &[1, 4, 16, 16], &[1, 4, 16, 16]], Dtype::Bfloat16);
    let qk = scores_of(&mut t, x[0], x[1]);
    let s = t.scalar(0.125, &[]);
    let s = t.op(Op::AsType, &[Arg::Dtype(Dtype::Bfloat16)], &[s]);
    let sb = t.op(Op::Broadcast, &[ints(&[1, 4, 16, 16])], &[s]);
    let scores = t.op(Op::Multiply, &[], &[qk, sb]);
    let up = t.op(Op::AsType, &[Arg::Dtype(from)], &[scores]);
    let p = t.op(Op::Softmax, &[Arg::Bool(false)], &[up]);
    let down = t.op(Op::AsType, &[Arg::Dtype(to)], &[p]);
    let out = t.op(Op::Matmul, &[], &[down, x[2]]);
    (t, out)
}

#[test]
fn sdpa_fires_on_a_softmax_in_float32_cast_back_to_the_inputs_dtype_only() {
    use superopt_ir::Dtype;
    let (t, out) = attention_softmax_cast(Dtype::Float32, Dtype::Bfloat16);
    assert!(has_op(&t.saturate(&ALL), out, Op::ScaledDotProductAttention));
    for (from, to) in [(Dtype::Float16, Dtype::Bfloat16), (Dtype::Float32, Dtype::Float16)] {
        let (t, out) = attention_softmax_cast(from, to);
        assert!(!has_op(&t.saturate(&ALL), out, Op::ScaledDotProductAttention), "{from:?} -> {to:?}");
    }
}

/// `softmax(where(keep, q @ k.T * 0.25, fill)) @ v`, `keep = m > 0` for an input `m`.
fn attention_where_kept(fill: f64) -> (TestGraph, Id) {
    let (mut t, x) = TestGraph::new(&[&[1, 4, 16, 16], &[1, 4, 16, 16], &[1, 4, 16, 16], &[1, 1, 16, 16]]);
    let qk = scores_of(&mut t, x[0], x[1]);
    let s = t.scalar(0.25, &[1, 4, 16, 16]);
    let scores = t.op(Op::Multiply, &[], &[qk, s]);
    let zero = t.scalar(0.0, &[1, 1, 16, 16]);
    let keep = t.op(Op::Greater, &[], &[x[3], zero]);
    let kb = t.op(Op::Broadcast, &[ints(&[1, 4, 16, 16])], &[keep]);
    let fill = t.scalar(fill, &[1, 4, 16, 16]);
    let masked = t.op(Op::Select, &[], &[kb, scores, fill]);
    let out = softmax_times(&mut t, masked, x[2]);
    (t, out)
}

/// `q @ k.T` over the last two axes of [B, H, T, D] arrays.
fn scores_of(t: &mut TestGraph, q: Id, k: Id) -> Id {
    let kt = t.op(Op::Transpose, &[ints(&[0, 1, 3, 2])], &[k]);
    t.op(Op::Matmul, &[], &[q, kt])
}

/// `softmax(scores) @ v`.
fn softmax_times(t: &mut TestGraph, scores: Id, v: Id) -> Id {
    let p = t.op(Op::Softmax, &[superopt_ir::Arg::Bool(false)], &[scores]);
    t.op(Op::Matmul, &[], &[p, v])
}

/// A boolean mask stays a `where`: MLX's SDPA, where it falls back to plain operations, fills
/// it with the lowest finite value, and a row masked whole would be v's mean instead of NaN.
#[test]
fn a_where_by_any_boolean_mask_is_not_made_sdpa() {
    for fill in [f64::NEG_INFINITY, -1e9] {
        let (t, out) = attention_where_kept(fill);
        assert!(!has_op(&t.saturate(&ALL), out, Op::ScaledDotProductAttention), "fill {fill}");
    }
}
