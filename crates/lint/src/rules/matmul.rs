//! Matmul chains whose literal shapes make the other association much cheaper.

use super::{Ctx, Hit};
use crate::term::{Op, Perm, Term, T};

/// The literal shape of a term, where the source spells it out.
pub fn shape(t: &T) -> Option<Vec<i64>> {
    match t.as_ref() {
        Term::Op(Op::Make(_, Some(s)), _) => Some(s.clone()),
        Term::Op(Op::Reshape(Some(s)), _) if s.iter().all(|&d| d > 0) => Some(s.clone()),
        Term::Op(Op::Transpose(p), a) => {
            let s = shape(&a[0])?;
            let n = s.len();
            let order: Vec<usize> = match p {
                Perm::Reverse => (0..n).rev().collect(),
                Perm::Swap(..) | Perm::Explicit(_) | Perm::Unknown => return None,
            };
            Some(order.iter().map(|&i| s[i]).collect())
        }
        Term::Op(Op::MatMul, a) => {
            let (l, r) = (shape(&a[0])?, shape(&a[1])?);
            // numpy's rules: a 1-D left operand is a row, a 1-D right operand a column, dropped after
            let (ml, mr) = (matrix(&l, true), matrix(&r, false));
            let (m, n) = (*ml.get(ml.len().checked_sub(2)?)?, *mr.last()?);
            let mut out = ml[..ml.len() - 2].to_vec();
            out.extend((l.len() > 1).then_some(m));
            out.extend((r.len() > 1).then_some(n));
            Some(out)
        }
        Term::Op(Op::Astype | Op::Neg | Op::Exp | Op::Sigmoid | Op::Tanh, a) => shape(&a[0]),
        Term::Op(Op::Mul | Op::Add | Op::Sub, a) if a.len() == 2 && a[1].num().is_some() => shape(&a[0]),
        Term::Op(Op::Mul | Op::Add, a) if a.len() == 2 && a[0].num().is_some() => shape(&a[1]),
        _ => None,
    }
}

/// A shape as a matrix: a 1-D vector is a row (on the left of a product) or a column (on the right).
fn matrix(s: &[i64], left: bool) -> Vec<i64> {
    match (s, left) {
        ([k], true) => vec![1, *k],
        ([k], false) => vec![*k, 1],
        _ => s.to_vec(),
    }
}

/// Multiply-adds of `a @ b`: every row of a (batch dimensions included) times every column of b.
fn cost(a: &[i64], b: &[i64]) -> Option<f64> {
    let a = matrix(a, true);
    let rows: f64 = a[..a.len() - 1].iter().map(|&d| d as f64).product();
    let inner = *a.last()? as f64;
    let cols = *matrix(b, false).last()? as f64;
    Some(rows * inner * cols)
}

pub fn order(t: &T, _: &Ctx) -> Option<Hit> {
    let (Op::MatMul, [l, r]) = t.op()? else { return None };
    let (left_grouped, a, b, c) = match (l.op(), r.op()) {
        (Some((Op::MatMul, [a, b])), _) => (true, a, b, r),
        (_, Some((Op::MatMul, [b, c]))) => (false, l, b, c),
        _ => return None,
    };
    let (sa, sb, sc) = (shape(a)?, shape(b)?, shape(c)?);
    let ab = shape(&crate::term::mk(Op::MatMul, vec![a.clone(), b.clone()]))?;
    let bc = shape(&crate::term::mk(Op::MatMul, vec![b.clone(), c.clone()]))?;
    let left = cost(&sa, &sb)? + cost(&ab, &sc)?;
    let right = cost(&sb, &sc)? + cost(&sa, &bc)?;
    let (written, other, spelled) =
        if left_grouped { (left, right, "A @ (B @ C)") } else { (right, left, "(A @ B) @ C") };
    (other * 2.0 <= written).then(|| {
        let msg = format!("matmul order: {spelled} takes {:.1}x fewer multiply-adds for these shapes", written / other);
        Hit::new(t, &msg)
    })
}
