//! Work sharing: a product over operands expanded by broadcast (grouped heads,
//! `mx.repeat`) computed once at the unexpanded size, then broadcast — the
//! shared-gram-matrix factoring. Transposes move inside reshapes and broadcasts
//! so that the expansion reaches the product.
//! May touch: Matmul, Transpose, Reshape, Broadcast.

use super::layout::perm;
use super::{const_list, Ctx, Family::Sharing, Rule};
use egg::Id;
use superopt_ir::Arg;
use superopt_ir::Op;

pub fn rules() -> Vec<Rule> {
    vec![
        Rule::build(Sharing, "transpose-into-broadcast", "(Transpose ?p (Broadcast ?s ?x))", transpose_into_broadcast),
        Rule::build(Sharing, "transpose-into-reshape", "(Transpose ?p (Reshape ?s ?x))", transpose_into_reshape),
        Rule::build(Sharing, "matmul-of-reshapes", "(Matmul (Reshape ?s1 ?a) (Reshape ?s2 ?b))", matmul_of_reshapes),
        Rule::build(
            Sharing,
            "matmul-of-broadcasts",
            "(Matmul (Broadcast ?s1 ?a) (Broadcast ?s2 ?b))",
            matmul_of_broadcasts,
        ),
    ]
}

fn list(args: &[Arg]) -> Option<Vec<Arg>> {
    args.first()?.list().map(<[Arg]>::to_vec)
}

/// `transpose(broadcast(x, s), p) = broadcast(transpose(x, p), s[p])` when `x` has `s`'s rank.
fn transpose_into_broadcast(cx: &mut Ctx) -> Option<Id> {
    let p = const_list(cx.args("?p")?, 0)?;
    let s = list(cx.args("?s")?)?;
    if cx.rank("?x")? != s.len() || p.len() != s.len() {
        return None;
    }
    let x = cx.id("?x");
    let t = cx.op(Op::Transpose, &[perm(&p)], &[x]);
    let s2: Vec<Arg> = p.iter().map(|i| s[*i as usize].clone()).collect();
    Some(cx.op(Op::Broadcast, &[Arg::List(s2)], &[t]))
}

fn swaps_last_two(p: &[i64]) -> bool {
    let r = p.len();
    r >= 2
        && p[r - 2] == r as i64 - 1
        && p[r - 1] == r as i64 - 2
        && p[..r - 2].iter().enumerate().all(|(i, v)| *v == i as i64)
}

/// Swapping the last two axes commutes with a reshape that keeps them.
fn transpose_into_reshape(cx: &mut Ctx) -> Option<Id> {
    let p = const_list(cx.args("?p")?, 0)?;
    let mut s = list(cx.args("?s")?)?;
    let (x, out) = (cx.shape("?x")?.to_vec(), cx.out().value()?.shape.clone());
    let (rx, r) = (x.len(), out.len());
    if !swaps_last_two(&p) || rx < 2 || x[rx - 2] != out[r - 1] || x[rx - 1] != out[r - 2] || s.len() != r {
        return None;
    }
    s.swap(r - 2, r - 1);
    let mut q: Vec<i64> = (0..rx as i64).collect();
    q.swap(rx - 2, rx - 1);
    let xid = cx.id("?x");
    let t = cx.op(Op::Transpose, &[perm(&q)], &[xid]);
    Some(cx.op(Op::Reshape, &[Arg::List(s)], &[t]))
}

/// Batch shapes of the two operands and of the reshapes' targets must agree, and the
/// reshapes must keep the matrix axes: then the product runs before the reshape.
fn matmul_of_reshapes(cx: &mut Ctx) -> Option<Id> {
    let (a, b, out) = (cx.shape("?a")?.to_vec(), cx.shape("?b")?.to_vec(), cx.out().value()?.shape.clone());
    let (s1, s2) = (list(cx.args("?s1")?)?, list(cx.args("?s2")?)?);
    let (ra, r) = (a.len(), out.len());
    let ra_shape = cx.lookup(Op::Reshape, &["?s1", "?a"])?;
    let rb_shape = cx.lookup(Op::Reshape, &["?s2", "?b"])?;
    let keeps = |x: &[i64], y: &[i64]| x.len() >= 2 && y.len() >= 2 && x[x.len() - 2..] == y[y.len() - 2..];
    let ok = keeps(&a, &ra_shape)
        && keeps(&b, &rb_shape)
        && ra >= 3
        && b.len() == ra
        && a[..ra - 2] == b[..ra - 2]
        && s1.len() == r
        && s2.len() == r
        && s1[..r - 2] == s2[..r - 2]
        && out[r - 2] == a[ra - 2]
        && out[r - 1] == b[ra - 1];
    if !ok {
        return None;
    }
    let (ai, bi) = (cx.id("?a"), cx.id("?b"));
    let m = cx.op(Op::Matmul, &[], &[ai, bi]);
    let target = [&s1[..r - 1], &s2[r - 1..]].concat();
    Some(cx.op(Op::Reshape, &[Arg::List(target)], &[m]))
}

/// Broadcasts that only expand batch axes move after the product.
fn matmul_of_broadcasts(cx: &mut Ctx) -> Option<Id> {
    let (a, b) = (cx.shape("?a")?.to_vec(), cx.shape("?b")?.to_vec());
    let (s1, s2) = (list(cx.args("?s1")?)?, list(cx.args("?s2")?)?);
    let r = s1.len();
    let ok = r >= 3 && a.len() == r && b.len() == r && s2.len() == r && s1[..r - 2] == s2[..r - 2];
    if !ok {
        return None;
    }
    let (ai, bi) = (cx.id("?a"), cx.id("?b"));
    let m = cx.op(Op::Matmul, &[], &[ai, bi]);
    let mv = cx.g[m].data.value()?.shape.clone();
    let out = cx.out().value()?.shape.clone();
    // The matrix axes must not have been broadcast.
    if mv[r - 2..] != out[r - 2..] {
        return None;
    }
    let target = [&s1[..r - 1], &s2[r - 1..]].concat();
    Some(cx.op(Op::Broadcast, &[Arg::List(target)], &[m]))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{ints, TestGraph};
    use super::super::Family;
    use crate::egraph::lang::Mlx;
    use egg::Language;
    use superopt_ir::Op;

    /// `repeat(k, 4, axis=1)` as MLX exports it, then `kr @ kr^T`.
    fn gram(t: &mut TestGraph, k: egg::Id, heads: i64, groups: i64) -> egg::Id {
        let e = t.op(Op::ExpandDims, &[ints(&[2])], &[k]);
        let b = t.op(Op::Broadcast, &[ints(&[1, heads, groups, 16, 8])], &[e]);
        let kr = t.op(Op::Reshape, &[ints(&[1, heads * groups, 16, 8])], &[b]);
        let kt = t.op(Op::Transpose, &[ints(&[0, 1, 3, 2])], &[kr]);
        t.op(Op::Matmul, &[], &[kr, kt])
    }

    #[test]
    fn gram_of_repeated_heads_is_computed_once_per_kv_head() {
        let (mut t, x) = TestGraph::new(&[&[1, 2, 16, 8]]);
        let g0 = gram(&mut t, x[0], 2, 4);
        let e = t.op(Op::ExpandDims, &[ints(&[2])], &[x[0]]);
        let g = t.saturate(&[Family::Layout, Family::Sharing]);
        // matmul at the unexpanded size: [1,2,1,16,8] @ [1,2,1,8,16]
        let small = g
            .classes()
            .flat_map(|c| c.nodes.iter().map(move |n| (c.id, n)))
            .find(|(_, n)| n.op() == Some(Op::Matmul) && g.find(n.children()[0]) == g.find(e));
        let (id, _) = small.expect("the product at 2 heads was added");
        assert_eq!(g[id].data.value().unwrap().shape, vec![1, 2, 1, 16, 16]);
        // ... and the 8-head gram is equal to its broadcast.
        let reshaped = g[g.find(g0)].nodes.iter().any(|n| n.op() == Some(Op::Reshape));
        assert!(reshaped);
        let _ = Mlx::Input(0);
    }

    #[test]
    fn a_product_of_different_keys_is_not_factored_wrongly() {
        // k1 repeated, k2 tiled (group order differs): shapes of the broadcasts disagree.
        let (mut t, x) = TestGraph::new(&[&[1, 2, 16, 8], &[1, 2, 16, 8]]);
        let e1 = t.op(Op::ExpandDims, &[ints(&[2])], &[x[0]]);
        let b1 = t.op(Op::Broadcast, &[ints(&[1, 2, 4, 16, 8])], &[e1]);
        let r1 = t.op(Op::Reshape, &[ints(&[1, 8, 16, 8])], &[b1]);
        let e2 = t.op(Op::ExpandDims, &[ints(&[1])], &[x[1]]);
        let b2 = t.op(Op::Broadcast, &[ints(&[1, 4, 2, 16, 8])], &[e2]);
        let r2 = t.op(Op::Reshape, &[ints(&[1, 8, 16, 8])], &[b2]);
        let kt = t.op(Op::Transpose, &[ints(&[0, 1, 3, 2])], &[r2]);
        let m = t.op(Op::Matmul, &[], &[r1, kt]);
        let g = t.saturate(&[Family::Layout, Family::Sharing]);
        assert!(!g[g.find(m)].nodes.iter().any(|n| n.op() == Some(Op::Reshape)), "tile vs repeat must not merge");
    }
}
