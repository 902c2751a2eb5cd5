//! Masks and tables built from shapes alone inside a function that runs every call.

use super::{Ctx, Hit};
use crate::term::{Make, Op, Term, T};

/// A term computed from shapes, settings and numbers only (no input values). A value that sizes
/// a constructor in `t` (`n` in `mx.arange(n)`) is a shape wherever else it appears in `t`.
fn from_shapes(t: &T, sizes: &[T]) -> bool {
    if sizes.iter().any(|s| s == t) {
        return true;
    }
    let all = |args: &[T]| !args.is_empty() && args.iter().all(|a| from_shapes(a, sizes));
    match t.as_ref() {
        Term::Num(_) | Term::Scalar(_) | Term::Op(Op::Make(..), _) => true,
        Term::Attr(base, attr) => t.is_metadata() || is_setting(base, attr),
        // a slice by numbers (`[:, None]`), not a gather by an input (`[idx]`)
        Term::Index(base, idx) => from_shapes(base, sizes) && static_index(idx),
        Term::Part(base, _) => from_shapes(base, sizes),
        Term::Op(Op::Sdpa | Op::MatMul | Op::Einsum(_) | Op::Reduce(..) | Op::Softmax(_), _) => false,
        Term::Op(_, args) => all(args),
        // math.* and numpy.* of settings
        Term::Call(f, args) if f.starts_with("math.") || f.starts_with("numpy.") => all(args),
        _ => false,
    }
}

/// The arguments of the constructors in `t`.
fn sizes(t: &T, out: &mut Vec<T>) {
    if let Term::Op(Op::Make(..), args) = t.as_ref() {
        out.extend(args.iter().cloned());
    }
    t.children().iter().for_each(|c| sizes(c, out));
}

/// `self.base`, `self.dims`: a setting of the module; `self.offset`, `self.lengths`: its state.
fn is_setting(base: &T, attr: &str) -> bool {
    const STATE: &[&str] = &["offset", "length", "padding", "mask", "cache", "step", "pos", "index", "idx", "state"];
    matches!(base.as_ref(), Term::Name(n) if n == "self") && !STATE.iter().any(|s| attr.contains(s))
}

/// An index of numbers, colons, `None` and `...` only.
fn static_index(idx: &str) -> bool {
    idx.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .all(|w| w.is_empty() || w == "None" || w.parse::<i64>().is_ok())
}

/// The first constructor of one of these kinds in t (not looking into `.shape`).
fn made_of<'a>(t: &'a T, kinds: &[Make]) -> Option<&'a T> {
    match t.as_ref() {
        Term::Op(Op::Make(kind, _), _) if kinds.contains(kind) => Some(t),
        Term::Attr(..) => None,
        _ => t.children().iter().find_map(|c| made_of(c, kinds)),
    }
}

/// The positions a table is made of: an arange, or the ones a tri mask is cut from.
fn positions(t: &T) -> Option<&T> {
    made_of(t, &[Make::Arange, Make::Ones, Make::Full, Make::Zeros])
}

/// `mx.arange(...)` somewhere in t: positions proper.
fn arange_in(t: &T) -> bool {
    made_of(t, &[Make::Arange]).is_some()
}

/// A mask (tril/triu, positions compared pairwise), relative positions, or a table of
/// exp/pow/cos/sin of positions.
fn is_table(t: &T) -> bool {
    let Some((op, args)) = t.op() else { return false };
    // relative positions: a difference or sum of two position vectors broadcast against each other
    // (a comparison of positions with one bound is a 1-D mask, cheap to build: not counted)
    let pairwise = matches!(op, Op::Sub | Op::Add | Op::Compare) && args.len() == 2 && args.iter().all(arange_in);
    let kind = pairwise || matches!(op, Op::Tri | Op::Exp | Op::Pow | Op::Recip | Op::Cos | Op::Sin | Op::Log);
    let mut made_with = Vec::new();
    sizes(t, &mut made_with);
    kind && positions(t).is_some() && from_shapes(t, &made_with)
}

pub fn per_call_table(t: &T, ctx: &Ctx) -> Option<Hit> {
    if !ctx.runs_every_call || !is_table(t) {
        return None;
    }
    let msg =
        "mask or table built from shapes on every call: build it once (__init__, module level, or a cached helper)";
    // the innermost table is the key: `mask.astype(...)` and `mx.cos(positions * inv_freq)` are
    // the tables already found
    let mut core = t;
    while let Some(inner) = core.children().iter().find_map(|c| c.find(&is_table)) {
        core = inner;
    }
    Some(Hit::spanning(core, t, msg))
}
