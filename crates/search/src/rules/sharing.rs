//! Work sharing: a product over operands expanded by broadcast (grouped heads,
//! `mx.repeat`) computed once at the unexpanded size, then broadcast — the
//! shared-gram-matrix factoring. Transposes move inside reshapes and broadcasts
//! so that the expansion reaches the product; a scale of an operand's rows (or of the
//! other's columns) moves after it, so that a pre-scaled operand (`repeat(k) * beta`)
//! does not hide the expansion.
//! May touch: Matmul, Transpose, Reshape, Broadcast, Multiply by a row or column scale.

use super::layout::{perm, swaps_last_two};
use super::{const_list, Ctx, Family::Sharing, Rule};
use egg::Id;
use std::ops::Range;
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
        Rule::build(Sharing, "split-before-broadcast", "(Reshape ?r (Broadcast ?s ?x))", split_before_broadcast),
        Rule::build(Sharing, "row-scale-after-matmul", "(Matmul (Multiply ?a ?s) ?b)", row_scale_after_matmul),
        Rule::build(Sharing, "column-scale-after-matmul", "(Matmul ?a (Multiply ?b ?s))", column_scale_after_matmul),
    ]
}

/// How a reshape from `from` to `to` regroups axes: runs of `from` axes, each one `from` axis
/// split into `to` axes or `from` axes merged into one `to` axis (ranges into each).
/// `None` where the reshape does more (moves a factor across axes) or shapes disagree.
fn regroup(from: &[i64], to: &[i64]) -> Option<Vec<(Range<usize>, Range<usize>)>> {
    let (mut i, mut j, mut groups) = (0, 0, vec![]);
    while i < from.len() && j < to.len() {
        let (mut a, mut b, i0, j0) = (from[i], to[j], i, j);
        (i, j) = (i + 1, j + 1);
        while a != b {
            if a < b && i < from.len() && j == j0 + 1 {
                a *= from[i];
                i += 1;
            } else if b < a && j < to.len() && i == i0 + 1 {
                b *= to[j];
                j += 1;
            } else {
                return None;
            }
        }
        groups.push((i0..i, j0..j));
    }
    let ones = |xs: &[i64]| xs.iter().all(|d| *d == 1);
    if !ones(&from[i..]) || !ones(&to[j..]) {
        return None;
    }
    groups.extend((j..to.len()).map(|j| (from.len()..from.len(), j..j + 1)));
    Some(groups)
}

/// `reshape(broadcast(x, s), r)` where the reshape splits an axis: the split made on `x`
/// first (`x` has 1s on the broadcast axes), then the broadcast, then only merges — so a
/// product of chunked, head-repeated keys meets [`matmul_of_reshapes`] and [`matmul_of_broadcasts`].
fn split_before_broadcast(cx: &mut Ctx) -> Option<Id> {
    let (x, r) = (cx.shape("?x")?.to_vec(), cx.out().value()?.shape.clone());
    let s = cx.lookup(Op::Broadcast, &["?s", "?x"])?;
    let (s_args, r_args) = (list(cx.args("?s")?)?, list(cx.args("?r")?)?);
    let x_dims = cx.data("?x").dims.clone()?;
    if x.len() != s.len() || x.iter().zip(&s).any(|(a, b)| *a != 1 && a != b) {
        return None;
    }
    let groups = regroup(&s, &r)?;
    // A real split: one axis into two or more axes longer than 1 (not a unit axis added).
    let splits = |t: &Range<usize>| r[t.clone()].iter().filter(|d| **d > 1).count() >= 2;
    if !groups.iter().any(|(f, t)| f.len() == 1 && splits(t)) {
        return None;
    }
    let one = || Arg::Int(superopt_ir::Dim::constant(1));
    let (mut fine, mut fine_x) = (vec![], vec![]);
    for (f, t) in groups {
        let broadcast = |k: usize| x[k] == 1 && s[k] != 1;
        if f.len() == 1 && t.len() > 1 {
            fine.extend(r_args[t.clone()].iter().cloned());
            fine_x.extend(t.map(|j| if broadcast(f.start) { one() } else { r_args[j].clone() }));
        } else if f.is_empty() {
            fine.push(one());
            fine_x.push(one());
        } else {
            fine.extend(s_args[f.clone()].iter().cloned());
            fine_x.extend(f.map(|k| if broadcast(k) { one() } else { Arg::Int(x_dims[k].clone()) }));
        }
    }
    let xi = cx.id("?x");
    let split = cx.op(Op::Reshape, &[Arg::List(fine_x)], &[xi]);
    let wide = cx.op(Op::Broadcast, &[Arg::List(fine)], &[split]);
    Some(cx.op(Op::Reshape, &[Arg::List(r_args)], &[wide]))
}

/// Whether `s` scales whole lines of `x` along `axis` (the other matrix axis is 1 in `s`):
/// same rank and dtype, and every other axis of `s` is `x`'s or 1, so `x * s` is `x`'s shape.
/// Not float16: a scale often keeps a product in its range (`beta <= 1`), and moved after
/// the product it no longer would.
fn scales_lines(cx: &Ctx, x: &str, s: &str, one: usize) -> bool {
    let (Some(xv), Some(sv)) = (cx.value(x), cx.value(s)) else { return false };
    let r = xv.shape.len();
    r >= 2
        && sv.shape.len() == r
        && sv.dtype == xv.dtype
        && xv.dtype != superopt_ir::Dtype::Float16
        && sv.shape[one] == 1
        && sv.shape.iter().zip(&xv.shape).enumerate().all(|(i, (a, b))| i == one || a == b || *a == 1)
}

/// `(a * s) @ b = (a @ b) * s` where `s` is one value per row of `a` (`[.., M, 1]`).
fn row_scale_after_matmul(cx: &mut Ctx) -> Option<Id> {
    scale_after_matmul(cx, "?a", 1)
}

/// `a @ (b * s) = (a @ b) * s` where `s` is one value per column of `b` (`[.., 1, N]`).
fn column_scale_after_matmul(cx: &mut Ctx) -> Option<Id> {
    scale_after_matmul(cx, "?b", 2)
}

/// `s` moved from operand `scaled` to after the product, where `s` is 1 along that
/// operand's `from_end`-th axis from the end (the contracted axis keeps no scale).
fn scale_after_matmul(cx: &mut Ctx, scaled: &str, from_end: usize) -> Option<Id> {
    let r = cx.rank(scaled)?;
    if cx.rank("?a")? < 2 || cx.rank("?b")? < 2 || !scales_lines(cx, scaled, "?s", r - from_end) {
        return None;
    }
    let (a, b, s) = (cx.id("?a"), cx.id("?b"), cx.id("?s"));
    scaled_product(cx, a, b, s)
}

/// `(a @ b) * s`, where that has the product's shape and dtype (both operands are matrices
/// or batches of them, and `s` is one of the operands' lines, so it does).
fn scaled_product(cx: &mut Ctx, a: Id, b: Id, s: Id) -> Option<Id> {
    let out = cx.out().value()?.clone();
    let m = cx.op(Op::Matmul, &[], &[a, b]);
    (cx.g[m].data.value()? == &out).then(|| cx.op(Op::Multiply, &[], &[m, s]))
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

    /// `(repeat(k, groups) * s) @ repeat(k, groups)^T` with `s` of shape `scale`.
    fn prescaled_gram(t: &mut TestGraph, k: egg::Id, s: egg::Id, scale: &[i64]) -> egg::Id {
        let e = t.op(Op::ExpandDims, &[ints(&[2])], &[k]);
        let b = t.op(Op::Broadcast, &[ints(&[1, 2, 4, 16, 8])], &[e]);
        let kr = t.op(Op::Reshape, &[ints(&[1, 8, 16, 8])], &[b]);
        let sb = if scale == [1, 8, 16, 8] { s } else { t.op(Op::Broadcast, &[ints(&[1, 8, 16, 8])], &[s]) };
        let scaled = t.op(Op::Multiply, &[], &[kr, sb]);
        let kt = t.op(Op::Transpose, &[ints(&[0, 1, 3, 2])], &[kr]);
        t.op(Op::Matmul, &[], &[scaled, kt])
    }

    /// Whether the e-graph holds a product of this shape (the keys' own heads with themselves).
    fn has_product(g: &crate::egraph::lang::EGraph, shape: &[i64]) -> bool {
        g.classes().any(|c| {
            c.data.value().is_some_and(|v| v.shape == shape) && c.nodes.iter().any(|n| n.op() == Some(Op::Matmul))
        })
    }

    #[test]
    fn a_gram_of_pre_scaled_repeated_keys_is_computed_once_per_kv_head() {
        let (mut t, x) = TestGraph::new(&[&[1, 2, 16, 8], &[1, 8, 16, 1]]);
        let m = prescaled_gram(&mut t, x[0], x[1], &[1, 8, 16, 1]);
        let g = t.saturate(&[Family::Algebra, Family::Layout, Family::Sharing]);
        assert!(has_product(&g, &[1, 2, 1, 16, 16]), "the product at 2 heads was added");
        let scaled_after = g[g.find(m)].nodes.iter().any(|n| n.op() == Some(Op::Multiply));
        assert!(scaled_after, "the gram times the row scale is equal to the scaled gram");
    }

    #[test]
    fn a_scale_along_the_contracted_axis_stays_inside_the_product() {
        // Near misses: s varies along d (one value per column of the lhs), or everywhere.
        for scale in [&[1, 8, 1, 8][..], &[1, 8, 16, 8][..]] {
            let (mut t, x) = TestGraph::new(&[&[1, 2, 16, 8], scale]);
            let m = prescaled_gram(&mut t, x[0], x[1], scale);
            let g = t.saturate(&[Family::Algebra, Family::Layout, Family::Sharing]);
            assert!(!g[g.find(m)].nodes.iter().any(|n| n.op() == Some(Op::Multiply)), "{scale:?}");
            assert!(!has_product(&g, &[1, 2, 1, 16, 16]), "{scale:?}");
        }
    }

    #[test]
    fn a_scale_of_the_rhs_columns_moves_after_the_product() {
        // a [1,2,16,8] @ (b [1,2,8,4] * s): s one value per column fires; per row (the
        // contracted axis) is the near miss.
        for (scale, fires) in [(&[1, 2, 1, 4][..], true), (&[1, 2, 8, 1][..], false)] {
            let (mut t, x) = TestGraph::new(&[&[1, 2, 16, 8], &[1, 2, 8, 4], scale]);
            let sb = t.op(Op::Broadcast, &[ints(&[1, 2, 8, 4])], &[x[2]]);
            let scaled = t.op(Op::Multiply, &[], &[x[1], sb]);
            let m = t.op(Op::Matmul, &[], &[x[0], scaled]);
            let g = t.saturate(&[Family::Algebra, Family::Layout, Family::Sharing]);
            assert_eq!(g[g.find(m)].nodes.iter().any(|n| n.op() == Some(Op::Multiply)), fires, "{scale:?}");
        }
    }

    #[test]
    fn reshapes_regroup_into_splits_and_merges() {
        use super::regroup;
        // [1,2,2,64,16] -> [1,4,4,16,16]: heads merged, time split into chunks.
        let g = regroup(&[1, 2, 2, 64, 16], &[1, 4, 4, 16, 16]).unwrap();
        assert_eq!(g, vec![(0..1, 0..1), (1..3, 1..2), (3..4, 2..4), (4..5, 4..5)]);
        // Trailing unit axes drop out.
        assert_eq!(regroup(&[6, 1], &[6]), Some(vec![(0..1, 0..1)]));
        // Near misses: a factor moved across axes; different sizes.
        assert_eq!(regroup(&[2, 3], &[3, 2]), None);
        assert_eq!(regroup(&[4, 6], &[4, 5]), None);
    }

    /// `k` repeated to 4 heads, its time axis cut into chunks of 16, pre-scaled per row,
    /// and multiplied by its own transpose: the chunked port's gram matrix.
    fn chunked_gram(t: &mut TestGraph, k: egg::Id, s: egg::Id, chunks: &[i64]) -> egg::Id {
        let e = t.op(Op::ExpandDims, &[ints(&[2])], &[k]);
        let b = t.op(Op::Broadcast, &[ints(&[1, 2, 2, 64, 16])], &[e]);
        let kr = t.op(Op::Reshape, &[ints(&[1, 4, 64, 16])], &[b]);
        let kc = t.op(Op::Reshape, &[ints(chunks)], &[kr]);
        let sb = t.op(Op::Broadcast, &[ints(chunks)], &[s]);
        let scaled = t.op(Op::Multiply, &[], &[kc, sb]);
        let r = chunks.len() as i64;
        let perm: Vec<i64> = (0..r - 2).chain([r - 1, r - 2]).collect();
        let kt = t.op(Op::Transpose, &[ints(&perm)], &[kc]);
        t.op(Op::Matmul, &[], &[scaled, kt])
    }

    #[test]
    fn a_gram_of_chunked_repeated_keys_is_computed_once_per_kv_head() {
        let (mut t, x) = TestGraph::new(&[&[1, 2, 64, 16], &[1, 4, 4, 16, 1]]);
        chunked_gram(&mut t, x[0], x[1], &[1, 4, 4, 16, 16]);
        let g = t.saturate(&[Family::Algebra, Family::Layout, Family::Sharing]);
        assert!(has_product(&g, &[1, 2, 1, 4, 16, 16]), "the chunks' products at 2 heads were added");
    }

    #[test]
    fn a_reshape_that_only_merges_or_adds_unit_axes_is_not_split() {
        // Near misses: [1,2,2,64,16] -> [1,4,64,16] merges heads only; -> [1,2,2,64,1,16] adds
        // a unit axis. The rule adds nothing.
        for target in [&[1, 4, 64, 16][..], &[1, 2, 2, 64, 1, 16][..]] {
            let (mut t, x) = TestGraph::new(&[&[1, 2, 64, 16]]);
            let e = t.op(Op::ExpandDims, &[ints(&[2])], &[x[0]]);
            let b = t.op(Op::Broadcast, &[ints(&[1, 2, 2, 64, 16])], &[e]);
            let m = t.op(Op::Reshape, &[ints(target)], &[b]);
            let g = t.saturate(&[Family::Sharing]);
            assert_eq!(g[g.find(m)].nodes.len(), 1, "{target:?}");
        }
    }

    #[test]
    fn a_split_broadcast_axis_stays_a_broadcast() {
        // x [1,1,64,16] broadcast to 4 heads, then heads and time both split: x itself is
        // split only along time, its head axis left at 1 for the broadcast.
        let (mut t, x) = TestGraph::new(&[&[1, 1, 64, 16]]);
        let b = t.op(Op::Broadcast, &[ints(&[1, 4, 64, 16])], &[x[0]]);
        let m = t.op(Op::Reshape, &[ints(&[1, 2, 2, 4, 16, 16])], &[b]);
        let g = t.saturate(&[Family::Sharing]);
        let split_x = g.classes().any(|c| {
            c.data.value().is_some_and(|v| v.shape == [1, 1, 1, 4, 16, 16])
                && c.nodes.iter().any(|n| n.op() == Some(Op::Reshape) && g.find(n.children()[1]) == g.find(x[0]))
        });
        assert!(split_x, "x split to [1,1,1,4,16,16]");
        assert!(g[g.find(m)].nodes.len() > 1);
    }
}
