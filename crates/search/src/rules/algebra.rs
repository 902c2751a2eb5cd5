//! Algebra: identities, constant folding, scalar factors through matmul and
//! transpose, and matmul association (the cost model picks the cheaper order).
//! May touch: Multiply, Add, Subtract, Divide, Square, Power, Sqrt, Matmul, Transpose.
//! Rules whose name ends in `~` are exact in real arithmetic but may round differently.

use super::{Ctx, Family::Algebra, Rule};
use crate::egraph::convert::round_to;
use egg::Id;
use superopt_ir::Arg;
use superopt_ir::Op;

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
    use super::super::testing::{has_op, TestGraph};
    use super::super::Family;
    use crate::egraph::lang::Mlx;
    use superopt_ir::Op;

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
