//! Terms: Python expressions with the spelling taken out. `x / mx.sqrt(v)`, `x * v ** -0.5` and
//! `x * mx.rsqrt(v)` build one term; a name stands for what was last assigned to it, so a pattern
//! written over several statements is one term too. Rules match terms, not source text.

use std::rc::Rc;

/// A shared term: a name's term is the same `Rc` wherever the name is used.
pub type T = Rc<Term>;

/// The attributes of an array that describe it, not its values.
pub const METADATA: &[&str] = &["shape", "ndim", "size", "dtype"];

/// Terms larger than this become opaque: a name reassigned from itself many times stays cheap.
pub const MAX_SIZE: usize = 4000;

#[derive(Debug, PartialEq)]
pub enum Term {
    Num(f64),
    Str(String),
    /// A name nothing in scope assigns: a parameter, a global, a loop variable.
    Name(String),
    /// A parameter with a number for its default: a setting, not an array.
    Scalar(String),
    /// `value.attr` that is not an MLX function: `self.weight`, `x.shape`.
    Attr(T, String),
    /// `value[index]`, the index as source text without spaces.
    Index(T, String),
    /// The k-th of what an unpacking assignment took apart: `a, b = mx.split(x, 2)`.
    Part(T, usize),
    Tuple(Vec<T>),
    Op(Op, Vec<T>),
    /// A call of something not known here: its dotted name, positional arguments.
    Call(String, Vec<T>),
    /// Anything else (a comprehension, a lambda...), distinct by its source offset.
    Opaque(u32),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Add,
    Sub,
    Mul,
    MatMul,
    Pow,
    Neg,
    Recip,
    Square,
    Sqrt,
    Rsqrt,
    Exp,
    Log,
    Sigmoid,
    Tanh,
    Erf,
    Cos,
    Sin,
    Compare,
    Where,
    Astype,
    Reduce(Reduce, Axis),
    Softmax(Axis),
    Logsumexp(Axis),
    Transpose(Perm),
    /// The literal shape when every dimension is an integer.
    Reshape(Option<Vec<i64>>),
    /// `mx.repeat`, `mx.tile`, `mx.broadcast_to`: copies of the same values.
    Repeat,
    Concat,
    Split,
    Contiguous,
    Einsum(String),
    Sdpa,
    Tri,
    /// `a // b`, `a % b` (on integers: shapes and positions).
    FloorDiv,
    Mod,
    /// An array built from a shape alone, with its literal shape where written.
    Make(Make, Option<Vec<i64>>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    Sum,
    Mean,
    Max,
    Min,
    Var,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    Last,
    At(i64),
    All,
    /// Several axes, or an axis not written as a number.
    Many,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Perm {
    /// `transpose()` or `.T`: the axes reversed.
    Reverse,
    Explicit(Vec<i64>),
    Swap(i64, i64),
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Make {
    Arange,
    Ones,
    Zeros,
    Full,
    Eye,
    Linspace,
    Random,
}

impl Term {
    /// Nodes in the tree (shared subterms counted each time).
    pub fn size(&self) -> usize {
        1 + self.children().iter().map(|c| c.size()).sum::<usize>()
    }

    pub fn children(&self) -> &[T] {
        match self {
            Term::Attr(t, _) | Term::Index(t, _) | Term::Part(t, _) => std::slice::from_ref(t),
            Term::Tuple(ts) | Term::Op(_, ts) | Term::Call(_, ts) => ts,
            _ => &[],
        }
    }

    pub fn op(&self) -> Option<(&Op, &[T])> {
        match self {
            Term::Op(op, args) => Some((op, args)),
            _ => None,
        }
    }

    /// The argument of a one-argument op `want`.
    pub fn unary(&self, want: &Op) -> Option<&T> {
        match self.op() {
            Some((op, [a])) if op == want => Some(a),
            _ => None,
        }
    }

    pub fn num(&self) -> Option<f64> {
        match self {
            Term::Num(v) => Some(*v),
            Term::Op(Op::Neg, a) => a[0].num().map(|v| -v),
            _ => None,
        }
    }

    /// The factors of a product (`a * b * c`, however nested).
    pub fn factors(self: &T) -> Vec<T> {
        match self.op() {
            Some((Op::Mul, [a, b])) => {
                let mut f = a.factors();
                f.extend(b.factors());
                f
            }
            _ => vec![self.clone()],
        }
    }

    /// The terms of a sum (`a + b - c` gives a, b and -c).
    pub fn addends(self: &T) -> Vec<T> {
        match self.op() {
            Some((Op::Add, [a, b])) => {
                let mut f = a.addends();
                f.extend(b.addends());
                f
            }
            Some((Op::Sub, [a, b])) => {
                let mut f = a.addends();
                f.push(mk(Op::Neg, vec![b.clone()]));
                f
            }
            _ => vec![self.clone()],
        }
    }

    /// `x.shape`, `x.ndim`, `x.size`, `x.dtype`: about x, not its values.
    pub fn is_metadata(&self) -> bool {
        matches!(self, Term::Attr(_, a) if METADATA.contains(&a.as_str()))
    }

    /// The subterms a value is computed from (not looking into metadata such as `x.shape`).
    fn value_children(&self) -> &[T] {
        if self.is_metadata() {
            &[]
        } else {
            self.children()
        }
    }

    /// Whether `part` occurs in this term's values.
    pub fn contains(&self, part: &Term) -> bool {
        self == part || self.value_children().iter().any(|c| c.contains(part))
    }

    /// The first subterm (this one included, pre-order) that `pred` accepts, metadata not looked into.
    pub fn find<'a>(self: &'a T, pred: &dyn Fn(&T) -> bool) -> Option<&'a T> {
        if pred(self) {
            return Some(self);
        }
        self.value_children().iter().find_map(|c| c.find(pred))
    }
}

/// `t` with names replaced (a helper's return term at a call: parameters by arguments).
pub fn subst(t: &T, names: &std::collections::HashMap<String, T>) -> T {
    let each = |ts: &[T]| ts.iter().map(|c| subst(c, names)).collect::<Vec<T>>();
    match t.as_ref() {
        Term::Name(n) | Term::Scalar(n) => names.get(n).cloned().unwrap_or_else(|| t.clone()),
        Term::Attr(b, a) => Rc::new(Term::Attr(subst(b, names), a.clone())),
        Term::Index(b, i) => Rc::new(Term::Index(subst(b, names), i.clone())),
        Term::Part(b, k) => Rc::new(Term::Part(subst(b, names), *k)),
        Term::Tuple(ts) => Rc::new(Term::Tuple(each(ts))),
        Term::Op(op, ts) => mk(op.clone(), each(ts)),
        Term::Call(f, ts) => Rc::new(Term::Call(f.clone(), each(ts))),
        _ => t.clone(),
    }
}

pub fn num(v: f64) -> T {
    Rc::new(Term::Num(v))
}

/// An op node, with the spellings of one operation made one: a / b is a * (1 / b),
/// `1 / sqrt(v)` and `v ** -0.5` are rsqrt(v), `x * x` and `x ** 2` are square(x),
/// `1 / (1 + exp(-x))` is sigmoid(x), `-(-x)` is x.
pub fn mk(op: Op, args: Vec<T>) -> T {
    if let Some(v) = fold(&op, &args) {
        return num(v);
    }
    let t = match (&op, args.as_slice()) {
        (Op::Mul, [a, b]) if a == b => return mk(Op::Square, vec![a.clone()]),
        (Op::Mul, [a, b]) if a.num() == Some(1.0) => return b.clone(),
        (Op::Mul, [a, b]) if b.num() == Some(1.0) => return a.clone(),
        (Op::Mul, [a, b]) if a.num() == Some(-1.0) => return mk(Op::Neg, vec![b.clone()]),
        (Op::Mul, [a, b]) if b.num() == Some(-1.0) => return mk(Op::Neg, vec![a.clone()]),
        (Op::Pow, [a, b]) => match b.num() {
            Some(2.0) => return mk(Op::Square, vec![a.clone()]),
            Some(0.5) => return mk(Op::Sqrt, vec![a.clone()]),
            Some(-0.5) => return mk(Op::Rsqrt, vec![a.clone()]),
            Some(-1.0) => return mk(Op::Recip, vec![a.clone()]),
            _ => None,
        },
        (Op::Neg, [a]) => match a.as_ref() {
            Term::Num(v) => return num(-v),
            Term::Op(Op::Neg, inner) => return inner[0].clone(),
            _ => None,
        },
        (Op::Recip, [a]) => recip(a),
        _ => None,
    };
    t.unwrap_or_else(|| Rc::new(Term::Op(op, args)))
}

/// Arithmetic on numbers, done (`1 / math.sqrt(2)`, `2 ** -0.5`).
fn fold(op: &Op, args: &[T]) -> Option<f64> {
    let a = args.first()?.num()?;
    let b = || args.get(1).and_then(|t| t.num());
    Some(match op {
        Op::Add => a + b()?,
        Op::Sub => a - b()?,
        Op::Mul => a * b()?,
        Op::Pow => a.powf(b()?),
        Op::Sqrt => a.sqrt(),
        Op::Rsqrt => 1.0 / a.sqrt(),
        Op::Square => a * a,
        _ => return None,
    })
}

fn recip(a: &T) -> Option<T> {
    if let Some(v) = a.num() {
        return Some(num(1.0 / v));
    }
    match a.op()? {
        (Op::Sqrt, [v]) => Some(mk(Op::Rsqrt, vec![v.clone()])),
        (Op::Rsqrt, [v]) => Some(mk(Op::Sqrt, vec![v.clone()])),
        (Op::Recip, [v]) => Some(v.clone()),
        (Op::Add, [p, q]) => {
            // 1 / (1 + exp(-x)) is sigmoid(x)
            let e = if p.num() == Some(1.0) {
                q
            } else if q.num() == Some(1.0) {
                p
            } else {
                return None;
            };
            let arg = e.unary(&Op::Exp)?;
            let x = arg.unary(&Op::Neg)?;
            Some(mk(Op::Sigmoid, vec![x.clone()]))
        }
        _ => None,
    }
}

/// a / b, as a * (1 / b).
pub fn div(a: T, b: T) -> T {
    let r = mk(Op::Recip, vec![b]);
    if a.num() == Some(1.0) {
        return r;
    }
    mk(Op::Mul, vec![a, r])
}

/// a - b; `0 - b` is -b.
pub fn sub(a: T, b: T) -> T {
    if a.num() == Some(0.0) {
        return mk(Op::Neg, vec![b]);
    }
    mk(Op::Sub, vec![a, b])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> T {
        Rc::new(Term::Name(s.into()))
    }

    #[test]
    fn spellings_of_rsqrt_are_one_term() {
        let v = name("v");
        let a = div(name("x"), mk(Op::Sqrt, vec![v.clone()]));
        let b = mk(Op::Mul, vec![name("x"), mk(Op::Pow, vec![v.clone(), num(-0.5)])]);
        assert_eq!(a, b);
        assert_eq!(a.factors()[1], mk(Op::Rsqrt, vec![v]));
    }

    #[test]
    fn one_over_one_plus_exp_of_minus_x_is_sigmoid_and_of_plus_x_is_not() {
        let x = name("x");
        let e = mk(Op::Exp, vec![mk(Op::Neg, vec![x.clone()])]);
        let s = div(num(1.0), mk(Op::Add, vec![num(1.0), e]));
        assert_eq!(s, mk(Op::Sigmoid, vec![x.clone()]));
        let e = mk(Op::Exp, vec![x.clone()]);
        let s = div(num(1.0), mk(Op::Add, vec![num(1.0), e]));
        assert!(s.unary(&Op::Sigmoid).is_none());
    }
}
