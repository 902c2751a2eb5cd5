//! Layout: transposes, reshapes, broadcasts and copies that change no value.
//! May touch: Transpose, Reshape, Broadcast, Copy, StopGradient, and the
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

pub fn perm(p: &[i64]) -> Arg {
    Arg::ints(p)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{has_op, ints, TestGraph};
    use super::super::Family;
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
