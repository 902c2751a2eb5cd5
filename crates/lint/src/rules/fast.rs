//! Hand-written forms of what `mx.fast` and `nn` compute in one kernel: RMSNorm, LayerNorm,
//! softmax, SiLU, GELU, RoPE.

use super::{Ctx, Hit};
use crate::term::{Axis, Op, Reduce, Term, T};
use std::rc::Rc;

/// The value under a cast: `x.astype(mx.float32)` is x.
pub fn uncast(t: &T) -> &T {
    match t.unary(&Op::Astype) {
        Some(inner) => uncast(inner),
        None => t,
    }
}

fn same(a: &T, b: &T) -> bool {
    uncast(a) == uncast(b)
}

/// `v + eps` is v, when eps is a number or a name (a small constant in practice).
fn without_eps(t: &T) -> &T {
    let small = |e: &T| matches!(e.as_ref(), Term::Num(_) | Term::Name(_) | Term::Scalar(_) | Term::Attr(..));
    match t.op() {
        Some((Op::Add, [a, b])) if small(b) => a,
        Some((Op::Add, [a, b])) if small(a) => b,
        _ => t,
    }
}

/// v, where the factor is `rsqrt(v + eps)` or `1 / (sqrt(v) + eps)`.
fn inverse_root(f: &T) -> Option<&T> {
    if let Some(inner) = f.unary(&Op::Rsqrt) {
        return Some(without_eps(inner));
    }
    without_eps(f.unary(&Op::Recip)?).unary(&Op::Sqrt).map(without_eps)
}

fn last_axis_mean(t: &T) -> Option<&T> {
    match uncast(t).op()? {
        (Op::Reduce(Reduce::Mean, Axis::Last), [x]) => Some(x),
        // sum(...) / n
        (Op::Mul, [s, n]) if !matches!(n.as_ref(), Term::Op(..)) || n.unary(&Op::Recip).is_some() => match s.op()? {
            (Op::Reduce(Reduce::Sum, Axis::Last), [x]) => Some(x),
            _ => None,
        },
        _ => None,
    }
}

/// x, where t is x - mean(x).
fn centered(t: &T) -> Option<&T> {
    match uncast(t).op()? {
        (Op::Sub, [x, m]) if last_axis_mean(m).is_some_and(|y| same(x, y)) => Some(x),
        _ => None,
    }
}

/// The smallest product in `t` whose factors include all of `parts` (the same nodes): where a
/// match made of some factors sits, so that a match inside an inlined helper is known as its.
fn cover<'a>(t: &'a T, parts: &[&T]) -> &'a T {
    if let Some((Op::Mul, [a, b])) = t.op() {
        for side in [a, b] {
            let fs = side.factors();
            if parts.iter().all(|p| fs.iter().any(|f| Rc::ptr_eq(f, p))) {
                return cover(side, parts);
            }
        }
    }
    t
}

pub fn rms_norm(t: &T, _: &Ctx) -> Option<Hit> {
    let factors = t.factors();
    factors.iter().find_map(|f| {
        let v = inverse_root(f)?;
        let x = last_axis_mean(v)?.unary(&Op::Square)?;
        let g = factors.iter().find(|g| !Rc::ptr_eq(g, f) && same(g, x))?;
        let msg = "hand-written RMSNorm: mx.fast.rms_norm(x, weight, eps)";
        centered(uncast(x)).is_none().then(|| Hit::spanning(v, cover(t, &[f, g]), msg))
    })
}

pub fn layer_norm(t: &T, _: &Ctx) -> Option<Hit> {
    let factors = t.factors();
    factors.iter().find_map(|f| {
        let v = inverse_root(f)?;
        let x = match v.op()? {
            (Op::Reduce(Reduce::Var, Axis::Last), [x]) => x,
            _ => centered(last_axis_mean(v)?.unary(&Op::Square)?)?,
        };
        let g = factors.iter().find(|g| centered(g).is_some_and(|y| same(x, y)))?;
        let msg = "hand-written LayerNorm: mx.fast.layer_norm(x, weight, bias, eps)";
        Some(Hit::spanning(v, cover(t, &[f, g]), msg))
    })
}

/// The exponential a softmax is made of: `e * (1 / sum(e))` with e = exp(...), or
/// exp(x - logsumexp(x)). With the axis of its sum.
pub fn softmax_of(t: &T) -> Option<(&T, Axis)> {
    if let Some(arg) = t.unary(&Op::Exp) {
        if let Some((Op::Sub, [x, l])) = arg.op() {
            if let Some((Op::Logsumexp(axis), [y])) = l.op() {
                return (x == y).then_some((t, *axis));
            }
        }
        return None;
    }
    let (Op::Mul, [a, b]) = t.op()? else { return None };
    let (e, r) = if b.unary(&Op::Recip).is_some() { (a, b) } else { (b, a) };
    let (Op::Reduce(Reduce::Sum, axis), [s]) = r.unary(&Op::Recip)?.op()? else { return None };
    (e.unary(&Op::Exp).is_some() && s == e).then_some((e, *axis))
}

pub fn softmax(t: &T, _: &Ctx) -> Option<Hit> {
    let (e, axis) = softmax_of(t)?;
    // the match is t itself (e / sum(e), or exp(x - logsumexp(x)))
    let axis = match axis {
        Axis::Last => "-1".to_string(),
        Axis::At(k) => k.to_string(),
        _ => "...".to_string(),
    };
    Some(Hit::spanning(e, t, &format!("hand-written softmax: mx.softmax(x, axis={axis})")))
}

pub fn silu(t: &T, ctx: &Ctx) -> Option<Hit> {
    if ctx.compiled {
        return None;
    }
    let factors = t.factors();
    factors.iter().find_map(|f| {
        let x = f.unary(&Op::Sigmoid)?;
        let g = factors.iter().find(|g| same(g, x))?;
        Some(Hit::spanning(f, cover(t, &[f, g]), "hand-written SiLU: nn.silu(x)"))
    })
}

pub fn gelu(t: &T, ctx: &Ctx) -> Option<Hit> {
    if ctx.compiled {
        return None;
    }
    let factors = t.factors();
    let x_factor = |u: &T| factors.iter().find(|g| g.num().is_none() && same(g, u));
    let half = factors.iter().filter_map(|g| g.num()).product::<f64>();
    factors.iter().find_map(|f| {
        // x * sigmoid(1.702 * x)
        if let Some(arg) = f.unary(&Op::Sigmoid) {
            let fs = arg.factors();
            let quick = fs.iter().any(|g| g.num().is_some_and(|c| (c - 1.702).abs() < 1e-3));
            let x = fs.iter().find_map(x_factor).filter(|_| quick)?;
            return Some(Hit::spanning(f, cover(t, &[f, x]), "hand-written GELU: nn.gelu_fast_approx(x)"));
        }
        let (Op::Add, [a, b]) = f.op()? else { return None };
        let g = if a.num() == Some(1.0) {
            b
        } else if b.num() == Some(1.0) {
            a
        } else {
            return None;
        };
        if (half - 0.5).abs() > 1e-6 {
            return None;
        }
        let x_in = |u: &T| factors.iter().find(|h| h.num().is_none() && !Rc::ptr_eq(h, f) && u.contains(h));
        let (u, msg) = match (g.unary(&Op::Erf), g.unary(&Op::Tanh)) {
            (Some(u), _) => (u, "hand-written GELU: nn.gelu(x)"),
            (None, Some(u)) if u.find(&|s| s.num().is_some_and(|c| (c - 0.044715).abs() < 1e-4)).is_some() => {
                (u, "hand-written GELU (tanh): nn.gelu_approx(x)")
            }
            _ => return None,
        };
        let x = x_in(u)?;
        Some(Hit::spanning(f, cover(t, &[f, x]), msg))
    })
}

#[derive(PartialEq)]
enum Trig {
    Cos,
    Sin,
}

fn trig(t: &T) -> Option<Trig> {
    // a name whose `_`-separated words include cos or sin: `cos`, `freqs_sin`, `cos_cached`
    let named = |n: &str| {
        let words: Vec<String> =
            n.to_ascii_lowercase().split('_').map(|w| w.trim_end_matches(char::is_numeric).to_string()).collect();
        let has = |ws: &[&str]| words.iter().any(|w| ws.contains(&w.as_str()));
        if has(&["cos", "cosine", "cosines"]) {
            Some(Trig::Cos)
        } else if has(&["sin", "sine", "sines"]) {
            Some(Trig::Sin)
        } else {
            None
        }
    };
    match t.as_ref() {
        Term::Op(Op::Cos, _) => Some(Trig::Cos),
        Term::Op(Op::Sin, _) => Some(Trig::Sin),
        Term::Op(Op::Astype | Op::Reshape(_), a) if !a.is_empty() => trig(&a[0]),
        Term::Index(a, _) => trig(a),
        Term::Name(n) | Term::Scalar(n) | Term::Attr(_, n) => named(n),
        _ => None,
    }
}

/// What a rotation's data factor is of x: x itself, or a part of it (a slice of the last axes, a
/// half from a split, a rotation such as `rotate_half(x)`). A single element (`pts[..., 0]`) is not.
enum Piece<'a> {
    Whole(&'a T),
    Part(&'a T),
}

fn part_of(inner: &T) -> Option<Piece<'_>> {
    Some(Piece::Part(match piece(inner)? {
        Piece::Whole(r) | Piece::Part(r) => r,
    }))
}

fn piece(t: &T) -> Option<Piece<'_>> {
    let part = part_of;
    match t.as_ref() {
        Term::Index(a, idx) if idx.contains(':') => part(a),
        Term::Index(..) => None,
        Term::Part(a, _) => part(a),
        Term::Op(Op::Split | Op::Concat, a) | Term::Call(_, a) if !a.is_empty() => part(&a[0]),
        Term::Op(Op::Neg | Op::Astype | Op::Reshape(_), a) if !a.is_empty() => piece(&a[0]),
        _ => Some(Piece::Whole(t)),
    }
}

/// (the trig kind, the data factor) of `data * cos` or `-(data * sin)`.
fn rotation_term(t: &T) -> Option<(Trig, Piece<'_>)> {
    let t = t.unary(&Op::Neg).unwrap_or(t);
    let (Op::Mul, [a, b]) = t.op()? else { return None };
    match (trig(a), trig(b)) {
        (Some(k), None) => Some((k, piece(b)?)),
        (None, Some(k)) => Some((k, piece(a)?)),
        _ => None,
    }
}

pub fn rope(t: &T, _: &Ctx) -> Option<Hit> {
    let addends = t.addends();
    let [p, q] = addends.as_slice() else { return None };
    let (kp, dp) = rotation_term(p)?;
    let (kq, dq) = rotation_term(q)?;
    // one array, rotated: at least one factor is a part of it (a half, or rotate_half)
    let same = match (dp, dq) {
        (Piece::Part(a), Piece::Part(b)) | (Piece::Part(a), Piece::Whole(b)) | (Piece::Whole(a), Piece::Part(b)) => {
            a == b
        }
        (Piece::Whole(_), Piece::Whole(_)) => false,
    };
    // even and odd elements paired (`x[..., ::2]`, `x[..., 1::2]`) is the traditional layout
    let interleaved = t.find(&|s| matches!(s.as_ref(), Term::Index(_, idx) if idx.ends_with("::2"))).is_some();
    let msg = if interleaved {
        "hand-written rotary embedding (interleaved): mx.fast.rope(x, dims, traditional=True, base=..., offset=...) \
         where positions are offset + arange"
    } else {
        "hand-written rotary embedding: mx.fast.rope(x, dims, base=..., offset=...) where positions are offset + arange"
    };
    (kp != kq && same).then(|| Hit::new(t, msg))
}
