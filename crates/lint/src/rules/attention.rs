//! Attention written by hand, and K/V repeated for grouped-query attention.

use super::fast::{softmax_of, uncast};
use super::{Ctx, Hit};
use crate::term::{Op, Term, T};

/// The operands of a product: `a @ b`, `mx.einsum(spec, a, b)`, or SDPA's q, k and v.
fn product(t: &T) -> Option<&[T]> {
    match t.op()? {
        (Op::MatMul | Op::Einsum(_) | Op::Sdpa, args) => Some(args),
        _ => None,
    }
}

/// The probabilities of a softmax, by mx.softmax or by hand.
fn is_softmax(t: &T) -> bool {
    matches!(t.op(), Some((Op::Softmax(_), _))) || softmax_of(t).is_some()
}

pub fn attention(t: &T, _: &Ctx) -> Option<Hit> {
    let (Op::MatMul | Op::Einsum(_), [p, _v]) = t.op()? else { return None };
    let p = uncast(p);
    let scores_are_a_product = p.find(&|s| matches!(s, Term::Op(Op::MatMul | Op::Einsum(_), _))).is_some();
    // tanh soft-capping (Gemma 2) is not something the fused kernel does
    let capped = p.find(&|s| matches!(s, Term::Op(Op::Tanh, _))).is_some();
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

pub fn repeat_kv(t: &T, _: &Ctx) -> Option<Hit> {
    product(t)?.iter().map(under_layout).find(|a| matches!(a.op(), Some((Op::Repeat, _))))?;
    Some(Hit::new(
        t,
        "K/V repeated per query head before a product: pass them unrepeated to \
         mx.fast.scaled_dot_product_attention, or group the queries by K/V head",
    ))
}
