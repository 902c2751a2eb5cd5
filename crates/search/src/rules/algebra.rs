//! Algebra: identities, constant folding, scalar factors through matmul and
//! transpose, matmul association (the cost model picks the cheaper order, also through a
//! transposed product: `x @ (b @ a).T`), sums of broadcast products as matmuls, and a 0/1
//! table cast to bool as its condition.
//! May touch: Multiply, Add, Subtract, Divide, Square, Power, Sqrt, Matmul, Transpose, a
//! Sum `Reduce` of a product, and `AsType(bool)` of a `Select`.
//! Rules whose name ends in `~` are exact in real arithmetic but may round differently.

use super::layout::{perm, swaps_last_two};
use super::{const_int, const_list, Ctx, Family::Algebra, Rule};
use crate::egraph::convert::round_to;
use egg::Id;
use superopt_ir::{Arg, Dim, Dtype, Op, ReduceKind};

pub fn rules() -> Vec<Rule> {
    vec![
        Rule::pattern(Algebra, "mul-commute", "(Multiply ?a ?b)", "(Multiply ?b ?a)"),
        Rule::pattern(Algebra, "add-commute", "(Add ?a ?b)", "(Add ?b ?a)"),
        Rule::pattern(Algebra, "mul-reassociate~", "(Multiply (Multiply ?a ?b) ?c)", "(Multiply ?a (Multiply ?b ?c))"),
        Rule::pattern(Algebra, "square-as-product", "(Square ?x)", "(Multiply ?x ?x)"),
        Rule::pattern(Algebra, "product-as-square", "(Multiply ?x ?x)", "(Square ?x)"),
        Rule::when(Algebra, "power-two-as-product", "(Power ?x ?c)", "(Multiply ?x ?x)", |cx| {
            cx.scalar("?c") == Some(2.0)
        }),
        Rule::when(Algebra, "mul-one", "(Multiply ?a ?c)", "?a", |cx| cx.scalar("?c") == Some(1.0)),
        Rule::when(Algebra, "div-one", "(Divide ?a ?c)", "?a", |cx| cx.scalar("?c") == Some(1.0)),
        Rule::when(Algebra, "sub-zero", "(Subtract ?a ?c)", "?a", |cx| cx.scalar("?c") == Some(0.0)),
        Rule::build(Algebra, "div-sqrt-as-rsqrt~", "(Divide ?a (Sqrt ?f ?b))", div_sqrt),
        Rule::build(Algebra, "div-power-of-two-as-mul", "(Divide ?a ?c)", div_power_of_two),
        Rule::build(Algebra, "fold-scalar-factors~", "(Multiply (Multiply ?a ?c1) ?c2)", fold_factors),
        Rule::when(
            Algebra,
            "matmul-associate-right",
            "(Matmul (Matmul ?a ?b) ?c)",
            "(Matmul ?a (Matmul ?b ?c))",
            associable,
        ),
        Rule::when(
            Algebra,
            "matmul-associate-left",
            "(Matmul ?a (Matmul ?b ?c))",
            "(Matmul (Matmul ?a ?b) ?c)",
            associable,
        ),
        Rule::when(
            Algebra,
            "scalar-out-of-matmul-lhs~",
            "(Matmul (Multiply ?a ?s) ?b)",
            "(Multiply (Matmul ?a ?b) ?s)",
            scalar_s,
        ),
        Rule::when(
            Algebra,
            "scalar-out-of-matmul-rhs~",
            "(Matmul ?a (Multiply ?b ?s))",
            "(Multiply (Matmul ?a ?b) ?s)",
            scalar_s,
        ),
        Rule::when(
            Algebra,
            "scalar-into-matmul-lhs~",
            "(Multiply (Matmul ?a ?b) ?s)",
            "(Matmul (Multiply ?a ?s) ?b)",
            scalar_s,
        ),
        Rule::when(
            Algebra,
            "scalar-into-matmul-rhs~",
            "(Multiply (Matmul ?a ?b) ?s)",
            "(Matmul ?a (Multiply ?b ?s))",
            scalar_s,
        ),
        Rule::build(Algebra, "sum-of-products-as-matmul~", "(Reduce ?red (Multiply ?a ?b))", sum_of_products),
        Rule::when(
            Algebra,
            "transpose-of-matmul",
            "(Transpose ?p (Matmul ?a ?b))",
            "(Matmul (Transpose ?p ?b) (Transpose ?p ?a))",
            swaps_last_two_of_operands,
        ),
        Rule::when(Algebra, "bool-of-indicator", "(AsType ?t (Select ?c ?one ?zero))", "?c", indicator),
        Rule::when(
            Algebra,
            "scalar-out-of-transpose",
            "(Transpose ?p (Multiply ?a ?s))",
            "(Multiply (Transpose ?p ?a) ?s)",
            scalar_s,
        ),
    ]
}

/// `?s` holds one value (a 0-d array, or a constant fill).
fn scalar_s(cx: &Ctx) -> bool {
    cx.scalar("?s").is_some() || cx.shape("?s").is_some_and(|s| s.iter().product::<i64>() == 1 && s.is_empty())
}

/// `?p` swaps the last two axes and nothing else, and `?a` and `?b` have its rank (no
/// broadcast batch): `(a @ b)^T = b^T @ a^T`.
fn swaps_last_two_of_operands(cx: &Ctx) -> bool {
    let Some(p) = cx.args("?p").and_then(|a| const_list(a, 0)) else { return false };
    swaps_last_two(&p) && cx.rank("?a") == Some(p.len()) && cx.rank("?b") == Some(p.len())
}

/// `where(c, one, 0)` cast to bool is `c` itself where `one` is a nonzero constant (its cast
/// is true; NaN's too) and `0` is zero (the e-graph keeps the class's dtype and shape: `c` is
/// a boolean of the result's shape, or no union is made). `mx.tril(mx.ones(...)).astype(bool)`
/// is a causal mask so.
fn indicator(cx: &Ctx) -> bool {
    cx.scalar("?one").is_some_and(|v| v != 0.0) && cx.scalar("?zero") == Some(0.0)
}

/// `(a @ b) @ c = a @ (b @ c)` where `b` and `c` are plain matrices, or all three share their batch shape.
fn associable(cx: &Ctx) -> bool {
    let (Some(a), Some(b), Some(c)) = (cx.shape("?a"), cx.shape("?b"), cx.shape("?c")) else { return false };
    let plain = b.len() == 2 && c.len() == 2 && a.len() >= 2;
    let batched = a.len() == b.len()
        && b.len() == c.len()
        && a[..a.len() - 2] == b[..b.len() - 2]
        && b[..b.len() - 2] == c[..c.len() - 2];
    plain || batched
}

/// How an axis of a broadcast product `a * b` (equal ranks) takes part in a contraction.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Axis {
    /// Both operands have it (or both are 1 there).
    Batch,
    /// Only `a` has it (`b` is 1 there): a row of the product.
    Row,
    /// Only `b` has it: a column.
    Column,
}

/// Each axis's part, or `None` where the operands' shapes do not broadcast that simply.
/// An axis is 1 where its symbolic dim is 1 (one program for every size), else where its
/// size is.
fn axes(cx: &Ctx) -> Option<Vec<Axis>> {
    let (a, b) = (cx.data("?a"), cx.data("?b"));
    let (sa, sb) = (&a.value()?.shape, &b.value()?.shape);
    if sa.len() != sb.len() {
        return None;
    }
    let one = |d: &Option<Vec<Dim>>, s: &[i64], i: usize| match d {
        Some(d) => d[i] == Dim::constant(1),
        None => s[i] == 1,
    };
    let same = |i: usize| match (&a.dims, &b.dims) {
        (Some(x), Some(y)) => x[i] == y[i],
        _ => sa[i] == sb[i],
    };
    (0..sa.len())
        .map(|i| match (one(&a.dims, sa, i), one(&b.dims, sb, i)) {
            (false, true) => Some(Axis::Row),
            (true, false) => Some(Axis::Column),
            _ if same(i) => Some(Axis::Batch),
            _ => None,
        })
        .collect()
}

/// The shortest sum [`sum_of_products`] makes a matmul: a shorter one (a top-k combine of
/// experts' outputs, `(y * w[..., None]).sum(1)`) is one cheap pass, which the quantized
/// kernels fuse into the down projection; MLX's matrix-vector kernels want 32 at least.
const MIN_CONTRACTION: i64 = 32;

/// `sum(a * b, axis=k)` as `a @ b` where the product broadcasts like one: `a` and `b` both
/// span `k`, and besides batch axes `a` alone spans at most one axis (rows) and `b` alone at
/// most one (columns), one of the two at least. The product's temporary (every row against
/// every column, `[.., T, S, D]` in a hand-written attention) is never made, and the sum's
/// pass over it is one matmul (a batched matrix-vector product where one side is a vector).
fn sum_of_products(cx: &mut Ctx) -> Option<Id> {
    let red = cx.args("?red")?;
    let k = match const_list(red, 1)?.as_slice() {
        [k] => *k as usize,
        _ => return None,
    };
    let (ta, tb) = (cx.value("?a")?.dtype, cx.value("?b")?.dtype);
    if const_int(red, 0) != Some(ReduceKind::Sum.mlx()) || !ta.is_float() || ta != tb {
        return None;
    }
    // A TF32 matmul would round the operands the float32 sum takes whole.
    if ta == Dtype::Float32 && cx.g.analysis.matmul_tf32 {
        return None;
    }
    let parts = axes(cx)?;
    if parts.get(k) != Some(&Axis::Batch) || cx.shape("?a")?[k] < MIN_CONTRACTION {
        return None;
    }
    let only = |p: Axis| -> Option<Option<usize>> {
        let at: Vec<usize> = (0..parts.len()).filter(|i| parts[*i] == p).collect();
        (at.len() <= 1).then(|| at.first().copied())
    };
    let (row, column) = (only(Axis::Row)?, only(Axis::Column)?);
    let batch: Vec<usize> = (0..parts.len()).filter(|i| *i != k && parts[*i] == Axis::Batch).collect();
    // Every axis of `a` and `b` takes part (the product keeps the rank): a missing row
    // (column) is `a`'s 1 at the column (`b`'s 1 at the row); with both, `a`'s 1 at the
    // column and `b`'s at the row make one more batch axis, where the sum's 1 lands.
    let (a_axes, b_axes, labels) = match (row, column) {
        (Some(r), Some(c)) => (vec![c, r, k], vec![r, k, c], vec![k, r, c]),
        (Some(r), None) => (vec![r, k], vec![k, r], vec![r, k]),
        (None, Some(c)) => (vec![c, k], vec![k, c], vec![k, c]),
        (None, None) => return None,
    };
    let with_batch = |tail: Vec<usize>| [batch.clone(), tail].concat();
    let (a, b) = (cx.id("?a"), cx.id("?b"));
    let lhs = transposed(cx, a, &with_batch(a_axes));
    let rhs = transposed(cx, b, &with_batch(b_axes));
    let m = cx.op(Op::Matmul, &[], &[lhs, rhs]);
    let labels = with_batch(labels);
    let order: Vec<usize> = (0..parts.len()).map(|i| labels.iter().position(|l| *l == i).unwrap()).collect();
    Some(transposed(cx, m, &order))
}

/// `x` with its axes in order `axes` (itself where that is the identity).
fn transposed(cx: &mut Ctx, x: Id, axes: &[usize]) -> Id {
    if axes.iter().enumerate().all(|(i, v)| *v == i) {
        return x;
    }
    let p: Vec<i64> = axes.iter().map(|i| *i as i64).collect();
    cx.op(Op::Transpose, &[perm(&p)], &[x])
}

fn div_sqrt(cx: &mut Ctx) -> Option<Id> {
    if cx.args("?f")? != [Arg::Bool(false)] {
        return None;
    }
    let (a, b) = (cx.id("?a"), cx.id("?b"));
    let r = cx.op(Op::Sqrt, &[Arg::Bool(true)], &[b]);
    Some(cx.op(Op::Multiply, &[], &[a, r]))
}

/// `a / 2^k = a * 2^-k`, exactly.
fn div_power_of_two(cx: &mut Ctx) -> Option<Id> {
    let c = cx.scalar("?c")?;
    let dtype = cx.value("?c")?.dtype;
    if !(c.is_finite() && c != 0.0 && c.abs().log2().fract() == 0.0 && dtype.is_float()) {
        return None;
    }
    let a = cx.id("?a");
    let r = cx.scalar_const(1.0 / c, dtype);
    Some(cx.op(Op::Multiply, &[], &[a, r]))
}

/// `(a * c1) * c2 = a * (c1 c2)` for scalar constants, folded in their dtype.
fn fold_factors(cx: &mut Ctx) -> Option<Id> {
    let (c1, c2) = (cx.scalar("?c1")?, cx.scalar("?c2")?);
    let dtype = cx.value("?c1")?.dtype;
    if !dtype.is_float() || cx.value("?c2")?.dtype != dtype {
        return None;
    }
    let a = cx.id("?a");
    let c = cx.scalar_const(round_to(c1 * c2, dtype), dtype);
    Some(cx.op(Op::Multiply, &[], &[a, c]))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{has_op, ints, TestGraph};
    use super::super::Family;
    use crate::egraph::lang::Mlx;
    use egg::Language;
    use superopt_ir::{Arg, Dim, Op};

    #[test]
    fn matmul_association_both_ways() {
        let (mut t, x) = TestGraph::new(&[&[64, 8], &[8, 64], &[64, 8]]);
        let ab = t.op(Op::Matmul, &[], &[x[0], x[1]]);
        let abc = t.op(Op::Matmul, &[], &[ab, x[2]]);
        let g = t.saturate(&[Family::Algebra]);
        let bc = g.lookup(Mlx::Op(Op::Matmul, vec![x[1], x[2]])).expect("b @ c was added");
        let right = g.lookup(Mlx::Op(Op::Matmul, vec![x[0], bc])).expect("a @ (b @ c) was added");
        assert_eq!(g.find(right), g.find(abc));
    }

    #[test]
    fn a_transposed_product_associates_through_its_transpose() {
        // x @ (b @ a).T, LoRA's delta as a PyTorch port writes it: x @ a^T @ b^T is cheaper.
        let (mut t, x) = TestGraph::new(&[&[64, 256], &[256, 8], &[8, 256]]);
        let ba = t.op(Op::Matmul, &[], &[x[1], x[2]]);
        let bat = t.op(Op::Transpose, &[ints(&[1, 0])], &[ba]);
        let y = t.op(Op::Matmul, &[], &[x[0], bat]);
        let g = t.saturate(&[Family::Algebra, Family::Layout]);
        let classes: Vec<egg::Id> = g.classes().map(|c| c.id).collect();
        let at = classes
            .iter()
            .find(|c| g[**c].nodes.iter().any(|n| n.op() == Some(Op::Transpose) && n.children()[1] == x[2]));
        let at = *at.expect("a^T was added");
        let xat = g.lookup(Mlx::Op(Op::Matmul, vec![x[0], at])).expect("x @ a^T was added");
        assert!(g[g.find(y)].nodes.iter().any(|n| n.op() == Some(Op::Matmul) && n.children()[0] == g.find(xat)));
    }

    #[test]
    fn a_transpose_that_moves_a_batch_axis_is_not_a_transposed_product() {
        // [1, 0, 2] of a batched product swaps batch and rows: no b^T @ a^T.
        let (mut t, x) = TestGraph::new(&[&[4, 8, 16], &[4, 16, 8]]);
        let ab = t.op(Op::Matmul, &[], &[x[0], x[1]]);
        let abt = t.op(Op::Transpose, &[ints(&[1, 0, 2])], &[ab]);
        let g = t.saturate(&[Family::Algebra]);
        assert!(!has_op(&g, abt, Op::Matmul));
        // A batch that broadcasts (a rank-2 operand) neither.
        let (mut t, x) = TestGraph::new(&[&[4, 8, 16], &[16, 8]]);
        let ab = t.op(Op::Matmul, &[], &[x[0], x[1]]);
        let abt = t.op(Op::Transpose, &[ints(&[0, 2, 1])], &[ab]);
        let g = t.saturate(&[Family::Algebra]);
        assert!(!has_op(&g, abt, Op::Matmul));
    }

    /// `AsType(bool, Select(m, one, zero))` of a boolean input `m` and 0-d constants.
    fn indicator_cast(one: f64, zero: f64) -> (crate::egraph::lang::EGraph, egg::Id, egg::Id) {
        let (mut t, x) = super::super::testing::TestGraph::typed(&[&[8, 8]], superopt_ir::Dtype::Bool);
        // `mx.ones` traces as `Full` of a broadcast constant, `mx.zeros` likewise.
        let (a, b) = (t.scalar(one, &[8, 8]), t.scalar(zero, &[8, 8]));
        let (a, b) = (t.op(Op::Full, &[], &[a]), t.op(Op::Full, &[], &[b]));
        let s = t.op(Op::Select, &[], &[x[0], a, b]);
        let c = t.op(Op::AsType, &[Arg::Dtype(superopt_ir::Dtype::Bool)], &[s]);
        (t.saturate(&[Family::Algebra]), c, x[0])
    }

    #[test]
    fn a_zero_one_table_cast_to_bool_is_its_condition() {
        let (g, c, m) = indicator_cast(1.0, 0.0);
        assert_eq!(g.find(c), g.find(m));
        let (g, c, m) = indicator_cast(2.5, -0.0);
        assert_eq!(g.find(c), g.find(m));
    }

    #[test]
    fn other_tables_cast_to_bool_are_not_the_condition() {
        // where(m, 0, 1): its negation; where(m, 1, 0.5): true everywhere.
        for (one, zero) in [(0.0, 1.0), (1.0, 0.5)] {
            let (g, c, m) = indicator_cast(one, zero);
            assert_ne!(g.find(c), g.find(m), "where(m, {one}, {zero})");
        }
    }

    #[test]
    fn no_association_across_mismatched_batches() {
        // a: [2,4,8], b: [3,8,4] broadcast-incompatible batches never associate.
        let (mut t, x) = TestGraph::new(&[&[2, 4, 8], &[1, 8, 4], &[3, 4, 8]]);
        let ab = t.op(Op::Matmul, &[], &[x[0], x[1]]);
        let _ = t.op(Op::Matmul, &[], &[ab, x[2]]);
        let g = t.saturate(&[Family::Algebra]);
        assert!(g.lookup(Mlx::Op(Op::Matmul, vec![x[1], x[2]])).is_none());
    }

    #[test]
    fn scalar_moves_into_the_smaller_operand_side() {
        let (mut t, x) = TestGraph::new(&[&[16, 8], &[8, 16]]);
        let s = t.scalar(0.125, &[16, 16]);
        let m = t.op(Op::Matmul, &[], &[x[0], x[1]]);
        let y = t.op(Op::Multiply, &[], &[m, s]);
        let g = t.saturate(&[Family::Algebra, Family::Layout]);
        // (a * s) @ b is in y's class, with s broadcast implicitly.
        let c = g[g.find(y)].nodes.iter().any(|n| n.op() == Some(Op::Matmul));
        assert!(c);
    }

    #[test]
    fn scalar_that_is_not_uniform_stays_outside() {
        let (mut t, x) = TestGraph::new(&[&[16, 8], &[8, 16], &[16, 16]]);
        let m = t.op(Op::Matmul, &[], &[x[0], x[1]]);
        let y = t.op(Op::Multiply, &[], &[m, x[2]]);
        let g = t.saturate(&[Family::Algebra]);
        assert!(!g[g.find(y)].nodes.iter().any(|n| n.op() == Some(Op::Matmul)));
    }

    /// Whether class `id` holds a Matmul, or a Transpose of one.
    fn is_matmul(g: &crate::egraph::lang::EGraph, id: egg::Id) -> bool {
        has_op(g, id, Op::Matmul)
            || g[g.find(id)]
                .nodes
                .iter()
                .any(|n| n.op() == Some(Op::Transpose) && n.children().iter().any(|c| has_op(g, *c, Op::Matmul)))
    }

    /// `sum(x * y, axis)` of inputs already broadcast-shaped (1s where they are broadcast).
    fn sum_of_product(shapes: &[&[i64]], kind: i64, axes: &[i64]) -> (crate::egraph::lang::EGraph, egg::Id) {
        let (mut t, x) = TestGraph::new(shapes);
        let p = t.op(Op::Multiply, &[], &[x[0], x[1]]);
        let r = t.op(Op::Reduce, &[Arg::Int(Dim::constant(kind)), ints(axes)], &[p]);
        (t.saturate(&[Family::Algebra]), r)
    }

    #[test]
    fn a_broadcast_matrix_vector_sum_is_a_matmul() {
        // (s * k[..., None]).sum(-2): rows of s weighted by k, summed.
        let (g, r) = sum_of_product(&[&[1, 4, 32, 16], &[1, 4, 32, 1]], 2, &[2]);
        assert!(is_matmul(&g, r));
        // The other order of the operands, and a vector on the left summed over the last axis.
        let (g, r) = sum_of_product(&[&[1, 4, 32, 1], &[1, 4, 32, 16]], 2, &[2]);
        assert!(is_matmul(&g, r));
        let (g, r) = sum_of_product(&[&[2, 1, 64], &[2, 5, 64]], 2, &[2]);
        assert!(is_matmul(&g, r));
    }

    #[test]
    fn hand_written_attention_scores_are_a_matmul() {
        // sum(q[:, :, :, None] * k[:, :, None], -1): [B, H, T, 1, D] x [B, H, 1, S, D].
        let (g, r) = sum_of_product(&[&[1, 4, 16, 1, 32], &[1, 4, 1, 12, 32]], 2, &[4]);
        assert!(is_matmul(&g, r));
        // A batch axis both broadcast (1 in each) is kept.
        let (g, r) = sum_of_product(&[&[1, 1, 16, 1, 32], &[1, 1, 1, 12, 32]], 2, &[4]);
        assert!(is_matmul(&g, r));
    }

    #[test]
    fn near_misses_of_a_contraction_stay_sums() {
        // A max, not a sum.
        let (g, r) = sum_of_product(&[&[1, 4, 32, 16], &[1, 4, 32, 1]], 5, &[2]);
        assert!(!is_matmul(&g, r));
        // Summed over an axis only one operand spans: a sum times a broadcast, no contraction.
        let (g, r) = sum_of_product(&[&[1, 4, 32, 16], &[1, 4, 32, 1]], 2, &[3]);
        assert!(!is_matmul(&g, r));
        // Two axes summed.
        let (g, r) = sum_of_product(&[&[1, 4, 32, 16], &[1, 4, 32, 1]], 2, &[2, 3]);
        assert!(!is_matmul(&g, r));
        // The first operand alone spans two axes (rows of two kinds).
        let (g, r) = sum_of_product(&[&[3, 4, 32, 8], &[1, 1, 32, 8]], 2, &[2]);
        assert!(!is_matmul(&g, r));
        // No axis spanned by one operand alone: an elementwise dot product per batch entry.
        let (g, r) = sum_of_product(&[&[4, 32], &[4, 32]], 2, &[1]);
        assert!(!is_matmul(&g, r));
        // A top-k combine: 8 experts' outputs weighted and summed, too short a sum.
        let (g, r) = sum_of_product(&[&[2, 8, 64], &[2, 8, 1]], 2, &[1]);
        assert!(!is_matmul(&g, r));
    }

    #[test]
    fn no_float32_contraction_where_matmuls_round_to_tf32() {
        let (mut t, x) = TestGraph::new(&[&[1, 4, 32, 16], &[1, 4, 32, 1]]);
        t.g.analysis.matmul_tf32 = true;
        let p = t.op(Op::Multiply, &[], &[x[0], x[1]]);
        let r = t.op(Op::Reduce, &[Arg::Int(Dim::constant(2)), ints(&[2])], &[p]);
        let g = t.saturate(&[Family::Algebra]);
        assert!(!is_matmul(&g, r));
    }

    #[test]
    fn divide_by_power_of_two_only() {
        let (mut t, x) = TestGraph::new(&[&[4]]);
        let four = t.scalar(4.0, &[]);
        let three = t.scalar(3.0, &[]);
        let a = t.op(Op::Divide, &[], &[x[0], four]);
        let b = t.op(Op::Divide, &[], &[x[0], three]);
        let g = t.saturate(&[Family::Algebra]);
        assert!(has_op(&g, a, Op::Multiply));
        assert!(!has_op(&g, b, Op::Multiply));
    }
}
