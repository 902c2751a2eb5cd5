//! Layout: transposes, reshapes, broadcasts and copies that change no value, and a repeat
//! (`mx.repeat`: expand, broadcast, merge) moved under a transpose.
//! May touch: Transpose, Reshape, Broadcast, ExpandDims, Copy, StopGradient, and the
//! explicit broadcasts feeding elementwise primitives.

use super::{const_list, Ctx, Family::Layout, Rule};
use egg::Id;
use superopt_ir::{Arg, Op};

/// Elementwise primitives that broadcast their operands themselves.
const IMPLICIT_BROADCAST: &[Op] = &[
    Op::Add,
    Op::Subtract,
    Op::Multiply,
    Op::Divide,
    Op::Maximum,
    Op::Minimum,
    Op::Power,
    Op::Greater,
    Op::GreaterEqual,
    Op::Less,
    Op::LessEqual,
    Op::LogicalAnd,
    Op::LogicalOr,
];

pub fn rules() -> Vec<Rule> {
    let mut out = vec![
        Rule::build(Layout, "transpose-compose", "(Transpose ?p (Transpose ?q ?x))", transpose_compose),
        Rule::when(Layout, "transpose-identity", "(Transpose ?p ?x)", "?x", |cx| is_identity(cx, "?p")),
        Rule::pattern(Layout, "reshape-compose", "(Reshape ?s (Reshape ?t ?x))", "(Reshape ?s ?x)"),
        Rule::when(Layout, "reshape-identity", "(Reshape ?s ?x)", "?x", same_dims),
        Rule::when(Layout, "broadcast-identity", "(Broadcast ?s ?x)", "?x", same_dims),
        Rule::pattern(Layout, "broadcast-compose", "(Broadcast ?s (Broadcast ?t ?x))", "(Broadcast ?s ?x)"),
        Rule::build(
            Layout,
            "transpose-of-repeat",
            "(Transpose ?p (Reshape ?s (Broadcast ?b (ExpandDims ?e ?x))))",
            transpose_of_repeat,
        ),
        Rule::pattern(Layout, "copy-drop", "(Copy ?x)", "?x"),
        Rule::pattern(Layout, "stop-gradient-drop", "(StopGradient ?x)", "?x"),
    ];
    for op in IMPLICIT_BROADCAST {
        // The e-graph keeps the result's shape: a rewrite that changes it is refused.
        out.push(Rule::pattern(
            Layout,
            &format!("implicit-broadcast-{op}-rhs"),
            &format!("({op} ?a (Broadcast ?s ?b))"),
            &format!("({op} ?a ?b)"),
        ));
        out.push(Rule::pattern(
            Layout,
            &format!("implicit-broadcast-{op}-lhs"),
            &format!("({op} (Broadcast ?s ?a) ?b)"),
            &format!("({op} ?a ?b)"),
        ));
    }
    for (k, pat) in
        ["(Select (Broadcast ?s ?m) ?a ?b)", "(Select ?m (Broadcast ?s ?a) ?b)", "(Select ?m ?a (Broadcast ?s ?b))"]
            .iter()
            .enumerate()
    {
        out.push(Rule::pattern(Layout, &format!("implicit-broadcast-Select-{k}"), pat, "(Select ?m ?a ?b)"));
    }
    out
}

fn is_identity(cx: &Ctx, var: &str) -> bool {
    cx.args(var).and_then(|a| const_list(a, 0)).is_some_and(|p| p.iter().enumerate().all(|(i, v)| *v == i as i64))
}

/// The matched class and `?x` have the same shape at every size.
fn same_dims(cx: &Ctx) -> bool {
    let (out, x) = (cx.out(), cx.data("?x"));
    out.values == x.values && out.dims.is_some() && out.dims == x.dims
}

/// `transpose(transpose(x, q), p) = transpose(x, q[p])`, or `x` when that is the identity.
fn transpose_compose(cx: &mut Ctx) -> Option<Id> {
    let p = const_list(cx.args("?p")?, 0)?;
    let q = const_list(cx.args("?q")?, 0)?;
    let r: Vec<i64> = p.iter().map(|i| q.get(*i as usize).copied()).collect::<Option<_>>()?;
    let x = cx.id("?x");
    if r.iter().enumerate().all(|(i, v)| *v == i as i64) {
        return Some(x);
    }
    Some(cx.op(Op::Transpose, &[perm(&r)], &[x]))
}

/// `repeat(x, n, axis=a)` transposed by `p` is `repeat(x transposed by p, n, axis=a')`, `a'`
/// where `p` puts axis `a` (GQA's K/V repeated on the heads of `[B, S, H, D]`, then moved
/// to `[B, H, S, D]`: a repeat SDPA does by itself). The repeat is checked on the traced
/// shapes: the new axis right after `a`, broadcast to `n`, merged into `a`.
fn transpose_of_repeat(cx: &mut Ctx) -> Option<Id> {
    let p = const_list(cx.args("?p")?, 0)?;
    let e = const_list(cx.args("?e")?, 0)?;
    let x = cx.shape("?x")?.to_vec();
    let (bv, sv) = (cx.traced_list(cx.args("?b")?, 0)?, cx.traced_list(cx.args("?s")?, 0)?);
    let (b, s) = (cx.args("?b")?.first()?.list()?.to_vec(), cx.args("?s")?.first()?.list()?.to_vec());
    let r = x.len();
    let [e] = e[..] else { return None };
    if e < 1 || e as usize > r || p.len() != r || bv.len() != r + 1 || sv.len() != r {
        return None;
    }
    let (a, n) = (e as usize - 1, bv[e as usize]);
    let mut merged = x.clone();
    merged[a] *= n;
    let expanded: Vec<i64> = [&x[..=a], &[n][..], &x[a + 1..]].concat();
    if bv != expanded || sv != merged {
        return None;
    }
    let a2 = p.iter().position(|i| *i == a as i64)?;
    // The new shapes from the old ones' entries (symbolic dims stay symbolic).
    let xdims: Vec<Arg> = b.iter().enumerate().filter(|(i, _)| *i != e as usize).map(|(_, d)| d.clone()).collect();
    let moved: Vec<Arg> = p.iter().map(|i| xdims[*i as usize].clone()).collect();
    let broadcast: Vec<Arg> = [&moved[..=a2], &[b[e as usize].clone()][..], &moved[a2 + 1..]].concat();
    let reshape: Vec<Arg> = p.iter().map(|i| s[*i as usize].clone()).collect();
    let xt = cx.op(Op::Transpose, &[perm(&p)], &[cx.id("?x")]);
    let ed = cx.op(Op::ExpandDims, &[Arg::ints(&[a2 as i64 + 1])], &[xt]);
    let bc = cx.op(Op::Broadcast, &[Arg::List(broadcast)], &[ed]);
    Some(cx.op(Op::Reshape, &[Arg::List(reshape)], &[bc]))
}

pub fn perm(p: &[i64]) -> Arg {
    Arg::ints(p)
}

/// Whether permutation `p` swaps the last two axes and nothing else.
pub fn swaps_last_two(p: &[i64]) -> bool {
    let r = p.len();
    r >= 2
        && p[r - 2] == r as i64 - 1
        && p[r - 1] == r as i64 - 2
        && p[..r - 2].iter().enumerate().all(|(i, v)| *v == i as i64)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{has_op, ints, TestGraph};
    use super::super::Family;
    use egg::Language;
    use superopt_ir::Op;

    #[test]
    fn transpose_round_trip_is_the_input() {
        let (mut t, x) = TestGraph::new(&[&[2, 3, 4]]);
        let a = t.op(Op::Transpose, &[ints(&[0, 2, 1])], &[x[0]]);
        let b = t.op(Op::Transpose, &[ints(&[0, 2, 1])], &[a]);
        let g = t.saturate(&[Family::Layout]);
        assert_eq!(g.find(b), g.find(x[0]));
    }

    #[test]
    fn transposes_that_do_not_cancel_stay() {
        let (mut t, x) = TestGraph::new(&[&[2, 3, 4]]);
        let a = t.op(Op::Transpose, &[ints(&[1, 0, 2])], &[x[0]]);
        let b = t.op(Op::Transpose, &[ints(&[0, 2, 1])], &[a]);
        let g = t.saturate(&[Family::Layout]);
        assert_ne!(g.find(b), g.find(x[0]));
        // Composed into one transpose [1, 2, 0].
        assert!(g[g.find(b)].nodes.iter().filter(|n| n.op() == Some(Op::Transpose)).count() >= 2);
    }

    /// `repeat(x, n, axis)` as MLX traces it: expand after `axis`, broadcast, merge.
    fn repeat(t: &mut TestGraph, x: egg::Id, shape: &[i64], axis: usize, n: i64) -> egg::Id {
        let e = t.op(Op::ExpandDims, &[ints(&[axis as i64 + 1])], &[x]);
        let expanded: Vec<i64> = [&shape[..=axis], &[n][..], &shape[axis + 1..]].concat();
        let b = t.op(Op::Broadcast, &[ints(&expanded)], &[e]);
        let mut merged = shape.to_vec();
        merged[axis] *= n;
        t.op(Op::Reshape, &[ints(&merged)], &[b])
    }

    #[test]
    fn a_repeat_moves_under_a_transpose() {
        // K [B, S, Hk, D] repeated on its heads, then moved to [B, H, S, D].
        let (mut t, x) = TestGraph::new(&[&[1, 16, 2, 8]]);
        let r = repeat(&mut t, x[0], &[1, 16, 2, 8], 2, 4);
        let moved = t.op(Op::Transpose, &[ints(&[0, 2, 1, 3])], &[r]);
        let g = t.saturate(&[Family::Layout]);
        // In moved's class: a Reshape of a Broadcast of an ExpandDims of x transposed.
        let under = |id: egg::Id, op: Op| -> Vec<egg::Id> {
            let nodes = g[g.find(id)].nodes.iter().filter(|n| n.op() == Some(op));
            nodes.map(|n| *n.children().last().unwrap()).collect()
        };
        let chain = under(moved, Op::Reshape).into_iter().flat_map(|b| under(b, Op::Broadcast));
        let inner = chain.flat_map(|e| under(e, Op::ExpandDims)).flat_map(|t| under(t, Op::Transpose));
        assert!(inner.into_iter().any(|x0| g.find(x0) == g.find(x[0])), "x transposed, then repeated");
        assert_eq!(g[g.find(moved)].data.value().unwrap().shape, vec![1, 8, 16, 8]);
    }

    #[test]
    fn a_tiling_is_not_a_repeat_under_a_transpose() {
        // Broadcast on a new axis BEFORE the heads (tiling, mx.tile's order): not a repeat of axis 2.
        let (mut t, x) = TestGraph::new(&[&[1, 16, 2, 8]]);
        let e = t.op(Op::ExpandDims, &[ints(&[2])], &[x[0]]);
        let b = t.op(Op::Broadcast, &[ints(&[1, 16, 4, 2, 8])], &[e]);
        let r = t.op(Op::Reshape, &[ints(&[1, 16, 8, 8])], &[b]);
        let moved = t.op(Op::Transpose, &[ints(&[0, 2, 1, 3])], &[r]);
        let g = t.saturate(&[Family::Layout]);
        assert!(!g[g.find(moved)].nodes.iter().any(|n| n.op() == Some(Op::Reshape)));
    }

    #[test]
    fn reshape_chain_collapses_and_identity_goes() {
        let (mut t, x) = TestGraph::new(&[&[4, 6]]);
        let a = t.op(Op::Reshape, &[ints(&[24])], &[x[0]]);
        let b = t.op(Op::Reshape, &[ints(&[4, 6])], &[a]);
        let c = t.op(Op::Reshape, &[ints(&[6, 4])], &[a]);
        let g = t.saturate(&[Family::Layout]);
        assert_eq!(g.find(b), g.find(x[0]));
        assert_ne!(g.find(c), g.find(x[0]), "a reshape to another shape is not the identity");
    }

    #[test]
    fn explicit_broadcast_into_multiply_goes_only_when_the_shape_stays() {
        let (mut t, x) = TestGraph::new(&[&[8, 16], &[16], &[8, 1]]);
        let w = t.op(Op::Broadcast, &[ints(&[8, 16])], &[x[1]]);
        let m = t.op(Op::Multiply, &[], &[x[0], w]);
        // Broadcasting [8,1] to [8,16] before multiplying by [8,1] changes the result's shape.
        let s = t.op(Op::Broadcast, &[ints(&[8, 16])], &[x[2]]);
        let m2 = t.op(Op::Multiply, &[], &[x[2], s]);
        let g = t.saturate(&[Family::Layout]);
        let direct = g.lookup(crate::egraph::lang::Mlx::Op(Op::Multiply, vec![x[0], x[1]])).unwrap();
        assert_eq!(g.find(direct), g.find(m));
        assert!(g
            .lookup(crate::egraph::lang::Mlx::Op(Op::Multiply, vec![x[2], x[2]]))
            .is_none_or(|i| g.find(i) != g.find(m2)));
        assert!(has_op(&g, m2, Op::Multiply));
    }
}
