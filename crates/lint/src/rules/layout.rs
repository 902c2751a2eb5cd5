//! Layout changes that cancel, and copies no op needs.

use super::{Ctx, Hit};
use crate::term::{Op, Perm, Term, T};

/// Where each output axis comes from, for `n` axes (None when the permutation is not literal).
fn explicit(p: &Perm, n: usize) -> Option<Vec<usize>> {
    let norm = |a: i64| if a < 0 { a + n as i64 } else { a };
    match p {
        Perm::Reverse => Some((0..n).rev().collect()),
        Perm::Explicit(v) if v.len() == n => {
            v.iter().map(|&a| usize::try_from(norm(a)).ok().filter(|&a| a < n)).collect()
        }
        Perm::Swap(a, b) => {
            let (a, b) = (usize::try_from(norm(*a)).ok()?, usize::try_from(norm(*b)).ok()?);
            let mut v: Vec<usize> = (0..n).collect();
            (a < n && b < n).then(|| v.swap(a, b))?;
            Some(v)
        }
        _ => None,
    }
}

fn rank(p: &Perm) -> Option<usize> {
    match p {
        Perm::Explicit(v) => Some(v.len()),
        _ => None,
    }
}

/// Whether `second` after `first` leaves the axes where they were (None: not known).
fn cancels(first: &Perm, second: &Perm) -> Option<bool> {
    if let (Perm::Reverse, Perm::Reverse) = (first, second) {
        return Some(true);
    }
    if let (Perm::Swap(a, b), Perm::Swap(c, d)) = (first, second) {
        if (a, b) == (c, d) || (a, b) == (d, c) {
            return Some(true);
        }
    }
    let n = rank(first).or(rank(second))?;
    let (p, q) = (explicit(first, n)?, explicit(second, n)?);
    Some(q.iter().enumerate().all(|(i, &j)| p[j] == i))
}

/// A number, or a named value broadcast in (`scale`, `self.scale[:, None]`, `1 / (1 - p)`).
fn scalar(t: &T) -> bool {
    match t.as_ref() {
        Term::Num(_) | Term::Scalar(_) | Term::Name(_) | Term::Attr(..) => true,
        Term::Index(base, _) => scalar(base),
        Term::Op(Op::Add | Op::Sub | Op::Mul | Op::Neg | Op::Recip | Op::Sqrt | Op::Rsqrt, args) => {
            args.iter().all(scalar)
        }
        _ => false,
    }
}

/// The transpose under elementwise work with scalars (`(x.T * scale).T` is x * scale).
fn inner_transpose(t: &T) -> Option<(&Perm, &T)> {
    match t.as_ref() {
        Term::Op(Op::Transpose(p), a) => Some((p, &a[0])),
        Term::Op(Op::Astype | Op::Contiguous | Op::Neg, a) => inner_transpose(&a[0]),
        Term::Op(Op::Mul | Op::Add | Op::Sub, a) if a.len() == 2 && scalar(&a[1]) => inner_transpose(&a[0]),
        Term::Op(Op::Mul | Op::Add, a) if a.len() == 2 && scalar(&a[0]) => inner_transpose(&a[1]),
        _ => None,
    }
}

pub fn round_trip(t: &T, _: &Ctx) -> Option<Hit> {
    let (op, args) = t.op()?;
    if let Op::Transpose(second) = op {
        let (first, under) = inner_transpose(&args[0])?;
        // in a chain of three or more, the first pair is the finding
        if matches!(under.op(), Some((Op::Transpose(_), _))) {
            return None;
        }
        // transposes are views: only a pair that cancels (with a strided pass between) is waste
        return (cancels(first, second) == Some(true))
            .then(|| Hit::new(t, "transpose undone by a transpose: drop both"));
    }
    let copied = match op {
        Op::MatMul | Op::Reshape(_) | Op::Sdpa | Op::Einsum(_) => {
            args.iter().find(|a| a.unary(&Op::Contiguous).is_some())
        }
        _ => None,
    }?;
    Some(Hit::new(copied, "mx.contiguous before an op that reads any layout: drop the copy"))
}
