//! Unit lower-triangular solves in the field: the generated solve kernels
//! (`crates/kernel/src/solve.rs`) by forward substitution, exact, and [`solve_form`], the
//! probe that tells kernel lowering which solve (if any) a region of a program computes.

use super::arith::Elem;
use super::eval::{random_tensor, Data, Interp, Tensor, Unfit};
use superopt_ir::Program;
use superopt_kernel::solve::{Rest, Sign, Solve};

/// Every form a solve may take, in the order [`solve_form`] tries them.
const FORMS: [(Sign, Rest); 6] = [
    (Sign::Minus, Rest::Input),
    (Sign::Minus, Rest::Identity),
    (Sign::Minus, Rest::Zero),
    (Sign::Plus, Rest::Input),
    (Sign::Plus, Rest::Identity),
    (Sign::Plus, Rest::Zero),
];

/// The kernel on `x` (`[..., n, n]`): per matrix, the strictly lower part of `(I + sL)^-1`
/// and `rest` elsewhere.
pub(super) fn kernel(s: &Solve, x: &Tensor) -> Result<Tensor, Unfit> {
    Ok(Tensor { data: Data::Field(solved(&x.field()?, s.n as usize, (s.sign, s.rest))?), ..x.clone() })
}

fn solved(x: &[Elem], n: usize, (sign, rest): (Sign, Rest)) -> Result<Vec<Elem>, Unfit> {
    let bad = || "a solve of -inf".to_string();
    let mut out = Vec::with_capacity(x.len());
    for m in x.chunks(n * n) {
        // a = -sL; t[i][j] = [i == j] + sum_{k < i} a[i][k] t[k][j].
        let a = |i: usize, k: usize| match sign {
            Sign::Minus => Some(m[i * n + k]),
            Sign::Plus => m[i * n + k].neg(),
        };
        let mut t = vec![Elem::ZERO; n * n];
        for i in 0..n {
            for j in 0..n {
                t[i * n + j] = match i.cmp(&j) {
                    std::cmp::Ordering::Less => Elem::ZERO,
                    std::cmp::Ordering::Equal => Elem::ONE,
                    std::cmp::Ordering::Greater => {
                        let mut acc = Elem::ZERO;
                        for k in j..i {
                            acc = acc.add(a(i, k).ok_or_else(bad)?.mul(t[k * n + j]).ok_or_else(bad)?);
                        }
                        acc
                    }
                };
            }
        }
        for i in 0..n {
            for j in 0..n {
                out.push(match (i > j, rest) {
                    (true, _) | (false, Rest::Identity) => t[i * n + j],
                    (false, Rest::Zero) => Elem::ZERO,
                    (false, Rest::Input) => m[i * n + j],
                });
            }
        }
    }
    Ok(out)
}

/// Which solve `p` computes, if any: `p` takes one matrix `[1.., n, n]` and returns one of
/// its shape, and agrees exactly with one of the forms on two random matrices (nothing
/// uninterpreted involved).
pub fn solve_form(p: &Program) -> Option<(Sign, Rest)> {
    let ([x], [_]) = (p.inputs.as_slice(), p.outputs.as_slice()) else { return None };
    let shape = &p.value(*x).shape;
    let n = *shape.last()? as usize;
    let mut forms: Vec<(Sign, Rest)> = FORMS.to_vec();
    for trial in 0..2 {
        let input = random_tensor(shape, p.value(*x).dtype, &format!("solve probe {trial}"));
        let mut interp = Interp::default();
        let out = interp.run(p, std::slice::from_ref(&input)).ok()?.pop()?;
        if !interp.uninterpreted.is_empty() || out.shape != input.shape {
            return None;
        }
        let (got, given) = (out.field().ok()?, input.field().ok()?);
        forms.retain(|f| solved(&given, n, *f).is_ok_and(|want| want == got));
    }
    forms.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::{check, FieldVerdict};
    use superopt_ir::{Arg, ConstData, Constant, Dim, Dtype, Node, Op, OutputKind, ScalarExpr, Signature, Value};

    /// `x`'s strictly lower part, then rows `1..n` updated in place as
    /// `x[i, :i] += sum(x[i, :i, None] * x[:i, :i], axis=0)`; `wrong` subtracts at row 2.
    fn in_place(n: i64, wrong: bool) -> Program {
        let f = Dtype::Float32;
        let mut values = vec![Value { shape: vec![n, n], dtype: f }, Value { shape: vec![], dtype: f }];
        let mut nodes: Vec<Node> = vec![];
        let ints = |v: &[i64]| Arg::List(v.iter().map(|d| Arg::Int(Dim::constant(*d))).collect());
        let mut add = |op: Op, args: Vec<Arg>, inputs: Vec<usize>, shape: Vec<i64>, dtype: Dtype| {
            nodes.push(Node { op, args, inputs, outputs: vec![values.len()] });
            values.push(Value { shape, dtype });
            values.len() - 1
        };
        let range = vec![Arg::Float(0.0), Arg::Float(n as f64), Arg::Float(1.0)];
        let (r, c) = (add(Op::Arange, range.clone(), vec![], vec![n], Dtype::Int32), 0);
        let c = c + add(Op::Arange, range, vec![], vec![n], Dtype::Int32);
        let r = add(Op::ExpandDims, vec![ints(&[1])], vec![r], vec![n, 1], Dtype::Int32);
        let c = add(Op::ExpandDims, vec![ints(&[0])], vec![c], vec![1, n], Dtype::Int32);
        let r = add(Op::Broadcast, vec![ints(&[n, n])], vec![r], vec![n, n], Dtype::Int32);
        let c = add(Op::Broadcast, vec![ints(&[n, n])], vec![c], vec![n, n], Dtype::Int32);
        let mask = add(Op::Greater, vec![], vec![r, c], vec![n, n], Dtype::Bool);
        let zeros = add(Op::Broadcast, vec![ints(&[n, n])], vec![1], vec![n, n], f);
        let mut cur = add(Op::Select, vec![], vec![mask, 0, zeros], vec![n, n], f);
        for i in 1..n {
            let row = add(Op::Slice, vec![ints(&[i, 0]), ints(&[i + 1, i]), ints(&[1, 1])], vec![cur], vec![1, i], f);
            let block = add(Op::Slice, vec![ints(&[0, 0]), ints(&[i, i]), ints(&[1, 1])], vec![cur], vec![i, i], f);
            let col = add(Op::Reshape, vec![ints(&[i, 1])], vec![row], vec![i, 1], f);
            let col = add(Op::Broadcast, vec![ints(&[i, i])], vec![col], vec![i, i], f);
            let prod = add(Op::Multiply, vec![], vec![col, block], vec![i, i], f);
            let sum = add(Op::Reduce, vec![Arg::Int(Dim::constant(2)), ints(&[0])], vec![prod], vec![1, i], f);
            let op = if wrong && i == 2 { Op::Subtract } else { Op::Add };
            let new = add(op, vec![], vec![row, sum], vec![1, i], f);
            let at = vec![Arg::Int(Dim::constant(4)), ints(&[i, 0]), ints(&[i + 1, i]), ints(&[1, 1])];
            cur = add(Op::SliceUpdate, at, vec![cur, new], vec![n, n], f);
        }
        let zero = Constant { value: 1, data: ConstData::Scalar { expr: ScalarExpr::Lit { v: 0.0 } } };
        let signature = Signature::returning(OutputKind::Array);
        Program { values, inputs: vec![0], constants: vec![zero], nodes, outputs: vec![cur], signature }
    }

    #[test]
    fn an_in_place_substitution_is_a_solve_and_one_with_a_wrong_row_is_none() {
        assert_eq!(solve_form(&in_place(5, false)), Some((Sign::Minus, Rest::Zero)));
        assert_eq!(solve_form(&in_place(5, true)), None);
    }

    #[test]
    fn a_solve_kernel_is_proved_and_one_of_the_other_sign_is_not() {
        let by_hand = in_place(6, false);
        let mut kernel = by_hand.clone();
        let never = || false;
        let lines =
            superopt_kernel::solve::lower::lower(&mut kernel, superopt_kernel::Target::Cuda, &solve_form, &never);
        assert_eq!(lines.len(), 1);
        let types: Vec<(Vec<i64>, Dtype)> = vec![(vec![6, 6], Dtype::Float32)];
        let r = check(&by_hand, &kernel, &types, 2);
        assert!(matches!(r.verdict, FieldVerdict::Proved { .. }), "{}", r.summary());
        let mut call = superopt_kernel::Call::of_node(kernel.nodes.last().unwrap()).unwrap();
        let superopt_kernel::Body::Solve(s) = &mut call.body else { panic!("a solve") };
        s.sign = Sign::Plus;
        kernel.nodes.last_mut().unwrap().args = vec![call.to_arg()];
        let r = check(&by_hand, &kernel, &types, 2);
        assert!(r.refutes(), "{}", r.summary());
    }
}
