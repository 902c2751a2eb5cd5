//! Python expressions to terms, in a scope that knows what each name was last assigned.

use crate::imports::{api, Api, Imports};
use crate::term::{div, mk, num, sub, Axis, Make, Op, Perm, Reduce, Term, MAX_SIZE, T};
use ruff_python_ast::{self as ast, Expr, Number, Operator, UnaryOp};
use ruff_text_size::{Ranged, TextRange};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// Expressions nested deeper than this are not looked into.
const MAX_DEPTH: usize = 200;

/// A function's (or the module's) names, and every expression lowered in it, in source order
/// (inner expressions before the ones that hold them).
pub struct Scope<'a> {
    pub imports: &'a Imports,
    pub helpers: &'a Helpers,
    /// The class whose method this is (what `self.name(...)` calls).
    pub class: Option<&'a str>,
    pub env: HashMap<String, T>,
    pub seen: Vec<(TextRange, T)>,
    /// The term of the last `return` lowered.
    pub returned: Option<T>,
    /// The nodes of helpers' bodies inlined at calls (not those of the calls' arguments): a match
    /// that spans only these is the helper's finding, made at the helper.
    pub helper_nodes: HashSet<*const Term>,
    /// The inlined terms, kept alive while their nodes' addresses are in `helper_nodes`.
    inlined: Vec<T>,
    /// How deep in one expression the lowering is.
    depth: usize,
}

/// A function of the file as its callers see it: parameters and the term it returns.
pub struct Helper {
    pub params: Vec<String>,
    pub returns: T,
}

/// How a function of the file is called.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Callee {
    /// `name(...)`
    Function(String),
    /// `self.name(...)` in a method of `class`
    Method { class: String, name: String },
}

impl Callee {
    /// The function of the file's a call names: `name(...)`, or `self.name(...)` in a method of
    /// `class`.
    pub fn called(func: &Expr, class: Option<&str>) -> Option<Callee> {
        match func {
            Expr::Name(n) => Some(Callee::Function(n.id.to_string())),
            Expr::Attribute(a) if matches!(a.value.as_ref(), Expr::Name(n) if n.id.as_str() == "self") => {
                Some(Callee::Method { class: class?.to_string(), name: a.attr.to_string() })
            }
            _ => None,
        }
    }
}

pub type Helpers = HashMap<Callee, Helper>;

impl<'a> Scope<'a> {
    pub fn new(imports: &'a Imports, helpers: &'a Helpers, env: HashMap<String, T>) -> Self {
        Scope {
            imports,
            helpers,
            class: None,
            env,
            seen: Vec::new(),
            returned: None,
            helper_nodes: HashSet::new(),
            inlined: Vec::new(),
            depth: 0,
        }
    }

    /// A helper's return term with its parameters replaced by the call's arguments.
    fn inline(&mut self, callee: Callee, args: &[T], kw: &[(String, T)]) -> Option<T> {
        let h = self.helpers.get(&callee)?;
        let mut names: HashMap<String, T> = h.params.iter().cloned().zip(args.iter().cloned()).collect();
        names.extend(kw.iter().filter(|(k, _)| h.params.contains(k)).cloned());
        let t = crate::term::subst(&h.returns, &names);
        if t.size() > MAX_SIZE {
            return None;
        }
        let mut from_args = HashSet::new();
        names.values().for_each(|a| nodes(a, &mut from_args));
        let mut body = HashSet::new();
        nodes(&t, &mut body);
        self.helper_nodes.extend(body.difference(&from_args));
        self.inlined.push(t.clone());
        Some(t)
    }

    /// Binds `name` to `t`, or to an opaque term when `t` grew too big to match cheaply.
    pub fn bind(&mut self, name: &str, t: T, at: TextRange) {
        let t = if t.size() > MAX_SIZE { opaque(at) } else { t };
        self.env.insert(name.to_string(), t);
    }

    /// Binds an assignment target: names, and tuples of names (by element or by part).
    pub fn assign(&mut self, target: &Expr, value: T) {
        match target {
            Expr::Name(n) => self.bind(n.id.as_str(), value, n.range),
            Expr::Tuple(ast::ExprTuple { elts, .. }) | Expr::List(ast::ExprList { elts, .. }) => {
                for (k, e) in elts.iter().enumerate() {
                    let part = match value.as_ref() {
                        Term::Tuple(vs) if vs.len() == elts.len() => vs[k].clone(),
                        _ => Rc::new(Term::Part(value.clone(), k)),
                    };
                    self.assign(e, part);
                }
            }
            // `a[i] = ...` changes what `a` holds: later uses are a new value.
            Expr::Subscript(s) => {
                if let Expr::Name(n) = s.value.as_ref() {
                    self.bind(n.id.as_str(), opaque(s.range), s.range);
                }
            }
            _ => {}
        }
    }

    pub fn expr(&mut self, e: &Expr) -> T {
        // an expression nested deeper than any pattern (a generated chain of 10,000 sums) is opaque
        if self.depth > MAX_DEPTH {
            return opaque(e.range());
        }
        self.depth += 1;
        let t = self.lower(e);
        self.depth -= 1;
        self.seen.push((e.range(), t.clone()));
        t
    }

    fn lower(&mut self, e: &Expr) -> T {
        match e {
            Expr::NumberLiteral(n) => match &n.value {
                Number::Int(i) => num(i.as_i64().map(|v| v as f64).unwrap_or(f64::NAN)),
                Number::Float(f) => num(*f),
                Number::Complex { .. } => opaque(n.range),
            },
            Expr::BooleanLiteral(b) => num(if b.value { 1.0 } else { 0.0 }),
            Expr::StringLiteral(s) => Rc::new(Term::Str(s.value.to_str().to_string())),
            Expr::Name(n) => match self.env.get(n.id.as_str()) {
                Some(t) => t.clone(),
                None => Rc::new(Term::Name(n.id.to_string())),
            },
            Expr::BinOp(b) => {
                let (l, r) = (self.expr(&b.left), self.expr(&b.right));
                binary(b.op, l, r)
            }
            Expr::UnaryOp(u) => {
                let a = self.expr(&u.operand);
                match u.op {
                    UnaryOp::USub => mk(Op::Neg, vec![a]),
                    UnaryOp::UAdd => a,
                    UnaryOp::Not | UnaryOp::Invert => opaque(u.range),
                }
            }
            Expr::Compare(c) => {
                let mut args = vec![self.expr(&c.left)];
                args.extend(c.comparators.iter().map(|x| self.expr(x)));
                mk(Op::Compare, args)
            }
            Expr::Tuple(ast::ExprTuple { elts, .. }) | Expr::List(ast::ExprList { elts, .. }) => {
                Rc::new(Term::Tuple(elts.iter().map(|x| self.expr(x)).collect()))
            }
            Expr::Subscript(s) => {
                let base = self.expr(&s.value);
                self.expr(&s.slice);
                Rc::new(Term::Index(base, self.text_of(&s.slice)))
            }
            Expr::Attribute(a) => self.attribute(a),
            Expr::Call(c) => self.call(c),
            // a lambda's body, lowered with its parameters as names (the rules see it; its value is opaque)
            Expr::Lambda(l) => {
                let params: Vec<String> = (l.parameters.iter())
                    .flat_map(|p| p.iter_non_variadic_params())
                    .map(|p| p.parameter.name.to_string())
                    .collect();
                let saved: Vec<(String, Option<T>)> = params.iter().map(|n| (n.clone(), self.env.remove(n))).collect();
                for n in &params {
                    self.env.insert(n.clone(), Rc::new(Term::Name(n.clone())));
                }
                self.expr(&l.body);
                for (n, old) in saved {
                    match old {
                        Some(t) => self.env.insert(n, t),
                        None => self.env.remove(&n),
                    };
                }
                opaque(l.range)
            }
            Expr::Slice(s) => {
                for x in [&s.lower, &s.upper, &s.step].into_iter().flatten() {
                    self.expr(x);
                }
                opaque(s.range)
            }
            _ => opaque(e.range()),
        }
    }

    fn attribute(&mut self, a: &ast::ExprAttribute) -> T {
        if let Some(path) = self.imports.attribute_path(a) {
            if let Some(v) = constant(&path) {
                return num(v);
            }
            return Rc::new(Term::Name(path));
        }
        let base = self.expr(&a.value);
        match a.attr.as_str() {
            "T" => mk(Op::Transpose(Perm::Reverse), vec![base]),
            attr => Rc::new(Term::Attr(base, attr.to_string())),
        }
    }

    fn call(&mut self, c: &ast::ExprCall) -> T {
        let path = self.imports.path(&c.func);
        let mut args = Vec::new();
        let method = match (&path, c.func.as_ref()) {
            (None, Expr::Attribute(a)) => {
                args.push(self.expr(&a.value));
                Some(a.attr.to_string())
            }
            _ => None,
        };
        args.extend(c.arguments.args.iter().map(|x| self.expr(x)));
        let kw: Vec<(String, T)> = (c.arguments.keywords.iter())
            .map(|k| (k.arg.as_ref().map(|a| a.to_string()).unwrap_or_default(), self.expr(&k.value)))
            .collect();
        let call = Call { args, kw };
        let lowered = match (&path, &method) {
            (Some(p), _) => match api(p) {
                Api::Core(f) | Api::Nn(f) => lower_fn(f, false, &call),
                Api::Math(f) => math(f, &call),
                Api::Other => None,
            },
            (None, Some(_)) if matches!(call.args[0].as_ref(), Term::Name(s) if s == "self") => {
                Callee::called(&c.func, self.class).and_then(|f| self.inline(f, &call.args[1..], &call.kw))
            }
            (None, Some(m)) => lower_fn(m, true, &call),
            (None, None) => match c.func.as_ref() {
                Expr::Name(n) if !self.env.contains_key(n.id.as_str()) => builtin(n.id.as_str(), &call)
                    .or_else(|| Callee::called(&c.func, None).and_then(|f| self.inline(f, &call.args, &call.kw))),
                _ => None,
            },
        };
        lowered.unwrap_or_else(|| {
            let name = path.or(method.map(|m| format!(".{m}"))).unwrap_or_else(|| self.text_of(&c.func));
            Rc::new(Term::Call(name, call.args))
        })
    }

    fn text_of(&self, e: &Expr) -> String {
        // Terms hold source text only for indices and unknown callees; a short, spaceless form.
        let mut s = String::new();
        write_expr(e, &mut s);
        s
    }
}

/// The addresses of every node of `t`.
fn nodes(t: &T, out: &mut HashSet<*const Term>) {
    if out.insert(Rc::as_ptr(t)) {
        t.children().iter().for_each(|c| nodes(c, out));
    }
}

pub fn opaque(at: TextRange) -> T {
    Rc::new(Term::Opaque(at.start().to_u32()))
}

pub(crate) fn binary(op: Operator, l: T, r: T) -> T {
    match op {
        Operator::Add => mk(Op::Add, vec![l, r]),
        Operator::Sub => sub(l, r),
        Operator::Mult => mk(Op::Mul, vec![l, r]),
        Operator::Div => div(l, r),
        Operator::Pow => mk(Op::Pow, vec![l, r]),
        Operator::MatMult => mk(Op::MatMul, vec![l, r]),
        Operator::FloorDiv => mk(Op::FloorDiv, vec![l, r]),
        Operator::Mod => mk(Op::Mod, vec![l, r]),
        other => Rc::new(Term::Call(other.as_str().to_string(), vec![l, r])),
    }
}

fn constant(path: &str) -> Option<f64> {
    let name = path.rsplit('.').next()?;
    match (api(path), name) {
        (Api::Core(_) | Api::Math(_), "inf") => Some(f64::INFINITY),
        (Api::Core(_) | Api::Math(_), "pi") => Some(std::f64::consts::PI),
        (Api::Core(_) | Api::Math(_), "e") => Some(std::f64::consts::E),
        _ => None,
    }
}

/// A call's lowered arguments.
struct Call {
    args: Vec<T>,
    kw: Vec<(String, T)>,
}

impl Call {
    /// The argument at position `i` or keyword `name`.
    fn arg(&self, i: usize, name: &str) -> Option<&T> {
        self.kw.iter().find(|(k, _)| k == name).map(|(_, v)| v).or_else(|| self.args.get(i))
    }

    fn ints(&self, from: usize) -> Option<Vec<i64>> {
        match self.args.get(from..)? {
            [one] => ints(one),
            many => many.iter().map(int).collect(),
        }
    }
}

fn int(t: &T) -> Option<i64> {
    t.num().filter(|v| v.fract() == 0.0).map(|v| v as i64)
}

/// The integers of a literal shape: `(4096, 128)` or `4096`.
fn ints(t: &T) -> Option<Vec<i64>> {
    match t.as_ref() {
        Term::Tuple(items) => items.iter().map(int).collect(),
        _ => Some(vec![int(t)?]),
    }
}

fn axis(t: Option<&T>) -> Axis {
    match t.map(|t| t.as_ref()) {
        None => Axis::All,
        Some(Term::Tuple(items)) if items.len() == 1 => axis(Some(&items[0])),
        Some(Term::Tuple(_)) => Axis::Many,
        Some(t) => match t.num() {
            Some(-1.0) => Axis::Last,
            Some(v) => Axis::At(v as i64),
            None => Axis::Many,
        },
    }
}

/// An MLX function (or array method, the receiver first) as a term; None when not one known here.
fn lower_fn(name: &str, method: bool, c: &Call) -> Option<T> {
    let a = &c.args;
    let first = || a.first().cloned();
    let unary = |op: Op| Some(mk(op, vec![first()?]));
    let reduce = |r: Reduce| Some(mk(Op::Reduce(r, axis(c.arg(1, "axis"))), vec![first()?]));
    let binary_op = |op: Operator| Some(binary(op, c.arg(0, "a")?.clone(), c.arg(1, "b")?.clone()));
    match name {
        "exp" => unary(Op::Exp),
        "log" => unary(Op::Log),
        "sqrt" => unary(Op::Sqrt),
        "rsqrt" => unary(Op::Rsqrt),
        "square" => unary(Op::Square),
        "sigmoid" => unary(Op::Sigmoid),
        "tanh" => unary(Op::Tanh),
        "erf" => unary(Op::Erf),
        "cos" => unary(Op::Cos),
        "sin" => unary(Op::Sin),
        "negative" => unary(Op::Neg),
        "reciprocal" => unary(Op::Recip),
        "contiguous" => unary(Op::Contiguous),
        "astype" if method => unary(Op::Astype),
        "stop_gradient" => first(),
        "add" => binary_op(Operator::Add),
        "subtract" => binary_op(Operator::Sub),
        "multiply" => binary_op(Operator::Mult),
        "divide" => binary_op(Operator::Div),
        "power" => binary_op(Operator::Pow),
        "matmul" => binary_op(Operator::MatMult),
        "sum" => reduce(Reduce::Sum),
        "mean" => reduce(Reduce::Mean),
        "max" => reduce(Reduce::Max),
        "min" => reduce(Reduce::Min),
        "var" => reduce(Reduce::Var),
        "softmax" => Some(mk(Op::Softmax(axis(c.arg(1, "axis"))), vec![first()?])),
        "logsumexp" => Some(mk(Op::Logsumexp(axis(c.arg(1, "axis"))), vec![first()?])),
        "transpose" | "permute" => {
            let keyword = c.kw.iter().find(|(k, _)| k == "axes").map(|(_, v)| v);
            let perm = match (method, keyword, c.arg(1, "axes")) {
                (_, Some(t), _) | (false, None, Some(t)) => ints(t).map(Perm::Explicit).unwrap_or(Perm::Unknown),
                (_, None, None) => Perm::Reverse,
                (true, None, Some(_)) => c.ints(1).map(Perm::Explicit).unwrap_or(Perm::Unknown),
            };
            Some(mk(Op::Transpose(perm), vec![first()?]))
        }
        "swapaxes" => {
            let (p, q) = (int(c.arg(1, "axis1")?), int(c.arg(2, "axis2")?));
            let perm = p.zip(q).map(|(p, q)| Perm::Swap(p, q)).unwrap_or(Perm::Unknown);
            Some(mk(Op::Transpose(perm), vec![first()?]))
        }
        "reshape" => {
            let shape = if method { c.ints(1) } else { c.arg(1, "shape").and_then(ints) };
            Some(mk(Op::Reshape(shape), vec![first()?]))
        }
        "repeat" | "tile" | "broadcast_to" => unary(Op::Repeat),
        "concatenate" | "stack" => match c.arg(0, "arrays")?.as_ref() {
            Term::Tuple(items) => Some(mk(Op::Concat, items.clone())),
            _ => None,
        },
        "split" => unary(Op::Split),
        "einsum" => match a.first()?.as_ref() {
            Term::Str(spec) => Some(mk(Op::Einsum(spec.replace(' ', "")), a[1..].to_vec())),
            _ => None,
        },
        "fast.scaled_dot_product_attention" => Some(mk(Op::Sdpa, a.get(..3)?.to_vec())),
        "tril" | "triu" => Some(mk(Op::Tri, a.iter().chain(c.kw.iter().map(|(_, v)| v)).cloned().collect())),
        "where" => Some(mk(Op::Where, a.clone())),
        "arange" => Some(mk(Op::Make(Make::Arange, None), a.clone())),
        "ones" | "zeros" | "full" | "eye" | "linspace" => {
            let kind = match name {
                "ones" => Make::Ones,
                "zeros" => Make::Zeros,
                "full" => Make::Full,
                "eye" => Make::Eye,
                _ => Make::Linspace,
            };
            let shape = if kind == Make::Eye { None } else { c.arg(0, "shape").and_then(ints) };
            Some(mk(Op::Make(kind, shape), a.clone()))
        }
        "random.normal" | "random.uniform" => {
            let at = if name == "random.normal" { 0 } else { 2 };
            Some(mk(Op::Make(Make::Random, c.arg(at, "shape").and_then(ints)), vec![]))
        }
        _ => None,
    }
}

fn math(name: &str, c: &Call) -> Option<T> {
    let v = c.args.first()?.num()?;
    Some(num(match name {
        "sqrt" => v.sqrt(),
        "log" => v.ln(),
        "exp" => v.exp(),
        _ => return None,
    }))
}

fn builtin(name: &str, c: &Call) -> Option<T> {
    match (name, c.args.first().map(|t| t.as_ref())) {
        ("float", Some(Term::Str(s))) => s.trim().parse::<f64>().ok().map(num),
        ("float" | "int", Some(t)) => t.num().map(num),
        _ => None,
    }
}

/// A spaceless rendering of an index or callee (enough to tell `[..., :i]` from `[..., i]`).
pub(crate) fn write_expr(e: &Expr, out: &mut String) {
    match e {
        Expr::Name(n) => out.push_str(n.id.as_str()),
        Expr::NumberLiteral(n) => match &n.value {
            Number::Int(i) => out.push_str(&i.to_string()),
            Number::Float(f) => out.push_str(&f.to_string()),
            Number::Complex { .. } => out.push('j'),
        },
        Expr::Attribute(a) => {
            write_expr(&a.value, out);
            out.push('.');
            out.push_str(a.attr.as_str());
        }
        Expr::EllipsisLiteral(_) => out.push_str("..."),
        Expr::NoneLiteral(_) => out.push_str("None"),
        Expr::Slice(s) => {
            for (k, part) in [&s.lower, &s.upper, &s.step].into_iter().enumerate() {
                if k > 0 && (k < 2 || part.is_some()) {
                    out.push(':');
                }
                if let Some(p) = part {
                    write_expr(p, out);
                }
            }
        }
        Expr::Tuple(t) => {
            for (k, x) in t.elts.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                write_expr(x, out);
            }
        }
        Expr::UnaryOp(u) if u.op == UnaryOp::USub => {
            out.push('-');
            write_expr(&u.operand, out);
        }
        Expr::BinOp(b) => {
            write_expr(&b.left, out);
            out.push_str(b.op.as_str());
            write_expr(&b.right, out);
        }
        _ => out.push('?'),
    }
}
