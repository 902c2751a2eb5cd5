//! Attention written by hand, and K/V repeated for grouped-query attention.

use super::fast::{softmax_of, uncast};
use super::{Ctx, Hit};
use crate::term::{Op, Term, T};

/// The probabilities of a softmax, by mx.softmax or by hand.
fn is_softmax(t: &T) -> bool {
    matches!(t.op(), Some((Op::Softmax(_), _))) || softmax_of(t).is_some()
}

/// A transposed array, perhaps cast or scaled after (`k.transpose(0, 2, 3, 1) * scale`).
fn transposed(t: &T) -> bool {
    match t.as_ref() {
        Term::Op(Op::Transpose(_), _) => true,
        Term::Op(Op::Astype | Op::Contiguous, a) => transposed(&a[0]),
        Term::Op(Op::Mul, a) => transposed(&a[0]) || transposed(&a[1]),
        _ => false,
    }
}

/// Whether a product is queries times keys: `q @ k.T` (k transposed), or an einsum that
/// contracts the last axis of both operands (`"bhqd,bhkd->bhqk"`).
fn query_key(t: &T) -> bool {
    match t.as_ref() {
        Term::Op(Op::MatMul, a) => transposed(&a[1]),
        Term::Op(Op::Einsum(spec), a) if a.len() == 2 => {
            let Some((ins, out)) = spec.split_once("->") else { return false };
            let Some((l, r)) = ins.split_once(',') else { return false };
            matches!((l.chars().last(), r.chars().last()), (Some(x), Some(y)) if x == y && !out.contains(x))
        }
        _ => false,
    }
}

pub fn attention(t: &T, _: &Ctx) -> Option<Hit> {
    let (Op::MatMul | Op::Einsum(_), [p, _v]) = t.op()? else { return None };
    let p = uncast(p);
    let scores_are_a_product = p.find(&query_key).is_some();
    // tanh soft-capping (Gemma 2) is not something the fused kernel does
    let capped = p.find(&|s| matches!(s.as_ref(), Term::Op(Op::Tanh, _))).is_some();
    (is_softmax(p) && scores_are_a_product && !capped).then(|| {
        Hit::new(t, "hand-written attention: mx.fast.scaled_dot_product_attention(q, k, v, scale=..., mask=...)")
    })
}

/// The array under layout changes: a transposed, reshaped or cast repeat is still a repeat.
fn under_layout(t: &T) -> &T {
    match t.as_ref() {
        Term::Op(Op::Transpose(_) | Op::Reshape(_) | Op::Astype | Op::Contiguous, a) if a.len() == 1 => {
            under_layout(&a[0])
        }
        Term::Index(a, _) => under_layout(a),
        _ => t,
    }
}

/// The K and V operands of a product: SDPA's k and v, the keys of `q @ k.T`, the values of
/// `softmax(...) @ v`, or an einsum's operands.
fn keys_and_values(t: &T) -> Vec<&T> {
    match t.op() {
        Some((Op::Sdpa, [_, k, v])) => vec![k, v],
        Some((Op::Einsum(_), args)) => args.iter().collect(),
        Some((Op::MatMul, [p, v])) if is_softmax(uncast(p)) => vec![v],
        Some((Op::MatMul, [_, k])) if query_key(t) => vec![k],
        _ => vec![],
    }
}

pub fn repeat_kv(t: &T, _: &Ctx) -> Option<Hit> {
    let repeated =
        keys_and_values(t).into_iter().map(under_layout).find(|a| matches!(a.op(), Some((Op::Repeat, _))))?;
    Some(Hit::spanning(
        repeated,
        t,
        "K/V repeated per query head before a product: pass them unrepeated to \
         mx.fast.scaled_dot_product_attention, or group the queries by K/V head",
    ))
}
