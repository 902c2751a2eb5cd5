//! Hand-written forms of what `mx.fast` and `nn` compute in one kernel: RMSNorm, LayerNorm,
//! softmax, SiLU, GELU, RoPE.

use super::{Ctx, Hit};
use crate::term::{Axis, Op, Reduce, Term, T};

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
    match t.op()? {
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
    match t.op()? {
        (Op::Sub, [x, m]) if last_axis_mean(m).is_some_and(|y| same(x, y)) => Some(x),
        _ => None,
    }
}

pub fn rms_norm(t: &T, _: &Ctx) -> Option<Hit> {
    let factors = t.factors();
    factors.iter().find_map(|f| {
        let v = inverse_root(f)?;
        let x = last_axis_mean(v)?.unary(&Op::Square)?;
        let scaled = factors.iter().any(|g| !std::ptr::eq(g, f) && same(g, x));
        (scaled && centered(uncast(x)).is_none())
            .then(|| Hit::new(v, "hand-written RMSNorm: mx.fast.rms_norm(x, weight, eps)"))
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
        let has_centered = factors.iter().any(|g| centered(g).is_some_and(|y| same(x, y)));
        has_centered.then(|| Hit::new(v, "hand-written LayerNorm: mx.fast.layer_norm(x, weight, bias, eps)"))
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
    let axis = match axis {
        Axis::Last => "-1".to_string(),
        Axis::At(k) => k.to_string(),
        _ => "...".to_string(),
    };
    Some(Hit::new(e, &format!("hand-written softmax: mx.softmax(x, axis={axis})")))
}

pub fn silu(t: &T, _: &Ctx) -> Option<Hit> {
    let factors = t.factors();
    factors.iter().find_map(|f| {
        let x = f.unary(&Op::Sigmoid)?;
        factors.iter().any(|g| same(g, x)).then(|| Hit::new(f, "hand-written SiLU: nn.silu(x)"))
    })
}

pub fn gelu(t: &T, _: &Ctx) -> Option<Hit> {
    let factors = t.factors();
    let is_x = |u: &T| factors.iter().any(|g| g.num().is_none() && same(g, u));
    let half = factors.iter().filter_map(|g| g.num()).product::<f64>();
    factors.iter().find_map(|f| {
        // x * sigmoid(1.702 * x)
        if let Some(arg) = f.unary(&Op::Sigmoid) {
            let fs = arg.factors();
            let quick = fs.iter().any(|g| g.num().is_some_and(|c| (c - 1.702).abs() < 0.01));
            return (quick && fs.iter().any(is_x)).then(|| Hit::new(f, "hand-written GELU: nn.gelu_fast_approx(x)"));
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
        let uses_x = |u: &T| factors.iter().any(|h| h.num().is_none() && !std::ptr::eq(h, f) && u.contains(h));
        if let Some(u) = g.unary(&Op::Erf) {
            return uses_x(u).then(|| Hit::new(f, "hand-written GELU: nn.gelu(x)"));
        }
        let u = g.unary(&Op::Tanh)?;
        let cubic = u.find(&|s| s.num().is_some_and(|c| (c - 0.044715).abs() < 1e-4)).is_some();
        (cubic && uses_x(u)).then(|| Hit::new(f, "hand-written GELU (tanh): nn.gelu_approx(x)"))
    })
}

#[derive(PartialEq)]
enum Trig {
    Cos,
    Sin,
}

fn trig(t: &T) -> Option<Trig> {
    let named = |n: &str| {
        let n = n.to_ascii_lowercase();
        if n.contains("cos") {
            Some(Trig::Cos)
        } else if n.contains("sin") {
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

/// The array a slice, half, negation or rotation of x comes from.
fn root(t: &T) -> &T {
    match t.as_ref() {
        Term::Index(a, _) | Term::Part(a, _) => root(a),
        Term::Op(Op::Neg | Op::Astype | Op::Split | Op::Reshape(_) | Op::Concat, a) if !a.is_empty() => root(&a[0]),
        Term::Call(_, a) if !a.is_empty() => root(&a[0]),
        _ => t,
    }
}

/// (the trig kind, the data factor's root) of `data * cos` or `-(data * sin)`.
fn rotation_term(t: &T) -> Option<(Trig, &T)> {
    let t = t.unary(&Op::Neg).unwrap_or(t);
    let (Op::Mul, [a, b]) = t.op()? else { return None };
    match (trig(a), trig(b)) {
        (Some(k), None) => Some((k, root(b))),
        (None, Some(k)) => Some((k, root(a))),
        _ => None,
    }
}

pub fn rope(t: &T, _: &Ctx) -> Option<Hit> {
    let addends = t.addends();
    let [p, q] = addends.as_slice() else { return None };
    let (kp, rp) = rotation_term(p)?;
    let (kq, rq) = rotation_term(q)?;
    (kp != kq && rp == rq)
        .then(|| Hit::new(t, "hand-written rotary embedding: mx.fast.rope(x, dims, base=..., offset=...)"))
}
