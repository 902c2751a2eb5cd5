//! Rules over statements and calls: loops that update rows one at a time, host syncs in loops,
//! float64, kernel launches and their sources.

use super::kernel;
use crate::imports::Imports;
use crate::lower::write_expr;
use crate::registry::Rule;
use crate::term::{Term, T};
use ruff_python_ast::visitor::{walk_expr, Visitor};
use ruff_python_ast::{Expr, Stmt};
use ruff_text_size::{Ranged, TextRange, TextSize};
use std::collections::HashMap;

/// A finding before it has a line: the rule, where, and the message.
pub type Raw = (Rule, TextRange, String);

/// The index texts `name` is read at in `e` (`""` for a use of the whole name).
fn reads(e: &Expr, name: &str) -> Vec<String> {
    struct Reads<'n> {
        name: &'n str,
        found: Vec<String>,
    }
    impl<'a> Visitor<'a> for Reads<'_> {
        fn visit_expr(&mut self, e: &'a Expr) {
            match e {
                Expr::Subscript(s) if matches!(s.value.as_ref(), Expr::Name(n) if n.id.as_str() == self.name) => {
                    let mut text = String::new();
                    write_expr(&s.slice, &mut text);
                    self.found.push(text);
                    self.visit_expr(&s.slice);
                }
                Expr::Name(n) if n.id.as_str() == self.name => self.found.push(String::new()),
                _ => walk_expr(self, e),
            }
        }
    }
    let mut r = Reads { name, found: Vec::new() };
    r.visit_expr(e);
    r.found
}

fn name_of(e: &Expr) -> Option<&str> {
    match e {
        Expr::Name(n) => Some(n.id.as_str()),
        _ => None,
    }
}

/// `x[idx] = f(x[other])` with the loop variable in idx: row idx from the other rows.
fn row_from_rows(target: &Expr, value: &Expr, var: Option<&str>) -> bool {
    let Expr::Subscript(s) = target else { return false };
    let Some(base) = name_of(&s.value) else { return false };
    let mut idx = String::new();
    write_expr(&s.slice, &mut idx);
    let on_var = var.is_none_or(|v| !reads(&s.slice, v).is_empty());
    on_var && reads(value, base).iter().any(|r| !r.is_empty() && *r != idx)
}

/// Whether `e` computes something (arithmetic or a call), not only picks an element.
fn computes(e: &Expr) -> bool {
    struct Finder(bool);
    impl<'a> Visitor<'a> for Finder {
        fn visit_expr(&mut self, e: &'a Expr) {
            self.0 |= matches!(e, Expr::BinOp(_) | Expr::Call(_));
            walk_expr(self, e);
        }
    }
    let mut f = Finder(false);
    f.visit_expr(e);
    f.0
}

/// The names a loop body computes from `list` (directly, or from names computed from it).
fn derived_from(body: &[Stmt], list: &str) -> Vec<String> {
    fn assignments<'a>(body: &'a [Stmt], out: &mut Vec<(&'a str, &'a Expr)>) {
        for s in body {
            match s {
                Stmt::Assign(a) => out.extend(a.targets.iter().filter_map(name_of).map(|t| (t, a.value.as_ref()))),
                Stmt::AugAssign(a) => out.extend(name_of(&a.target).map(|t| (t, a.value.as_ref()))),
                Stmt::For(f) => assignments(&f.body, out),
                Stmt::While(w) => assignments(&w.body, out),
                Stmt::If(i) => {
                    assignments(&i.body, out);
                    i.elif_else_clauses.iter().for_each(|c| assignments(&c.body, out));
                }
                _ => {}
            }
        }
    }
    let mut all = Vec::new();
    assignments(body, &mut all);
    let mut derived: Vec<String> = Vec::new();
    loop {
        let before = derived.len();
        for (target, value) in &all {
            let direct = !reads(value, list).is_empty() && computes(value);
            if !derived.iter().any(|d| d == target) && (direct || derived.iter().any(|d| !reads(value, d).is_empty())) {
                derived.push(target.to_string());
            }
        }
        if derived.len() == before {
            return derived;
        }
    }
}

/// `x = concatenate([x, f(x)])` or `rows.append(f(rows))`: a row from the rows so far.
fn grows_from_itself(stmt: &Stmt, body: &[Stmt], imports: &Imports) -> bool {
    match stmt {
        Stmt::Assign(a) => {
            let (Some(x), Expr::Call(c)) = (a.targets.first().and_then(name_of), a.value.as_ref()) else {
                return false;
            };
            let joins = imports.path(&c.func).is_some_and(|p| p.ends_with(".concatenate") || p.ends_with(".stack"));
            let parts: Vec<&Expr> = match c.arguments.args.first() {
                Some(Expr::List(l)) => l.elts.iter().collect(),
                Some(Expr::Tuple(t)) => t.elts.iter().collect(),
                _ => return false,
            };
            let starts_with_x = parts.first().and_then(|p| name_of(p)) == Some(x);
            joins && starts_with_x && parts[1..].iter().any(|p| !reads(p, x).is_empty())
        }
        Stmt::Expr(e) => {
            let Expr::Call(c) = e.value.as_ref() else { return false };
            let Expr::Attribute(m) = c.func.as_ref() else { return false };
            let Some(list) = name_of(&m.value) else { return false };
            let derived = derived_from(body, list);
            let from_rows = |a: &Expr| {
                (!reads(a, list).is_empty() && computes(a)) || derived.iter().any(|d| !reads(a, d).is_empty())
            };
            m.attr.as_str() == "append" && c.arguments.args.iter().any(from_rows)
        }
        _ => false,
    }
}

/// The first statement of a loop body (nested blocks included, functions not) that computes a
/// row from earlier rows.
pub fn row_update(body: &[Stmt], var: Option<&str>, imports: &Imports) -> Option<TextRange> {
    rows_in(body, body, var, imports)
}

fn rows_in(stmts: &[Stmt], body: &[Stmt], var: Option<&str>, imports: &Imports) -> Option<TextRange> {
    stmts.iter().find_map(|s| {
        let hit = match s {
            Stmt::Assign(a) => a.targets.iter().any(|t| row_from_rows(t, &a.value, var)),
            Stmt::AugAssign(a) => row_from_rows(&a.target, &a.value, var),
            Stmt::If(i) => {
                let nested = std::iter::once(&i.body).chain(i.elif_else_clauses.iter().map(|c| &c.body));
                return nested.into_iter().find_map(|b| rows_in(b, body, var, imports));
            }
            Stmt::For(f) => return rows_in(&f.body, body, var, imports),
            Stmt::While(w) => return rows_in(&w.body, body, var, imports),
            Stmt::With(w) => return rows_in(&w.body, body, var, imports),
            _ => false,
        };
        (hit || grows_from_itself(s, body, imports)).then(|| s.range())
    })
}

/// The checks over one statement's expressions (not its nested statements).
pub struct Calls<'a> {
    pub imports: &'a Imports,
    pub env: &'a HashMap<String, T>,
    /// Module- and function-level string constants: kernel sources passed by name.
    pub strings: &'a HashMap<String, TextRange>,
    pub source: &'a str,
    pub in_loop: bool,
    /// Under `with mx.stream(mx.cpu)`, a call with `stream=mx.cpu`, or a CPU default device.
    pub on_cpu: bool,
    pub out: Vec<Raw>,
}

impl Calls<'_> {
    fn is(&self, e: &Expr, path: &str) -> bool {
        self.imports.path(e).as_deref() == Some(path)
    }

    fn int(&self, e: &Expr) -> Option<i64> {
        match e {
            Expr::NumberLiteral(n) => n.value.as_int().and_then(|i| i.as_i64()),
            Expr::Name(n) => self.env.get(n.id.as_str()).and_then(|t| t.num()).map(|v| v as i64),
            _ => None,
        }
    }

    /// Whether `e` is a NumPy value (its name was set from `np.*`): `.item()` on it is no sync.
    fn is_numpy(&self, e: &Expr) -> bool {
        fn numpy(t: &Term) -> bool {
            match t {
                Term::Call(f, _) => f.starts_with("numpy."),
                Term::Index(b, _) | Term::Attr(b, _) | Term::Part(b, _) => numpy(b),
                _ => false,
            }
        }
        match e {
            Expr::Subscript(s) => self.is_numpy(&s.value),
            Expr::Attribute(a) => self.is_numpy(&a.value),
            Expr::Call(c) => self.imports.path(&c.func).is_some_and(|p| p.starts_with("numpy.")),
            Expr::Name(n) => self.env.get(n.id.as_str()).is_some_and(|t| numpy(t)),
            _ => false,
        }
    }

    fn call(&mut self, c: &ruff_python_ast::ExprCall) {
        if let Expr::Attribute(m) = c.func.as_ref() {
            let host = matches!(m.attr.as_str(), "item" | "tolist") && c.arguments.args.is_empty();
            if self.in_loop && host && !self.is_numpy(&m.value) {
                let msg = format!(".{}() in a loop: a host sync each step; keep the values on the device", m.attr);
                self.out.push((Rule::HostSyncInLoop, c.range(), msg));
            }
        }
        if self.is(&c.func, "mlx.core.fast.metal_kernel") || self.is(&c.func, "mlx.core.fast.cuda_kernel") {
            let src = c.arguments.find_argument_value("source", 3);
            self.kernel_source(src);
        }
        for k in &c.arguments.keywords {
            let Some(arg) = k.arg.as_ref().map(|a| a.as_str()) else { continue };
            if arg == "threadgroup" {
                if let Expr::Tuple(t) = &k.value {
                    let dims: Option<Vec<i64>> = t.elts.iter().map(|e| self.int(e)).collect();
                    if let Some(n) = dims.map(|d| d.iter().product::<i64>()).filter(|&n| n > 1024) {
                        let msg = format!("threadgroup of {n} threads: at most 1024");
                        self.out.push((Rule::KernelThreadgroup, k.range(), msg));
                    }
                }
            }
        }
    }

    fn kernel_source(&mut self, src: Option<&Expr>) {
        let range = match src {
            Some(Expr::StringLiteral(s)) => s.range,
            Some(Expr::Name(n)) => match self.strings.get(n.id.as_str()) {
                Some(r) => *r,
                None => return,
            },
            _ => return,
        };
        let literal = &self.source[range];
        // the text inside the quotes (offsets stay the file's)
        let skip = literal.find(|c: char| !"rRbBuUfF\"'".contains(c)).unwrap_or(0);
        for (rule, at, msg) in kernel::check(&literal[skip..]) {
            let start = range.start() + TextSize::try_from(skip + at).unwrap_or_default();
            self.out.push((rule, TextRange::empty(start), msg));
        }
    }
}

impl<'a> Visitor<'a> for Calls<'_> {
    fn visit_expr(&mut self, e: &'a Expr) {
        match e {
            Expr::Call(c) => {
                self.call(c);
                let cpu = c.arguments.find_keyword("stream").is_some_and(|k| self.is(&k.value, "mlx.core.cpu"));
                let on_cpu = self.on_cpu || cpu;
                let was = std::mem::replace(&mut self.on_cpu, on_cpu);
                walk_expr(self, e);
                self.on_cpu = was;
            }
            Expr::ListComp(_) | Expr::SetComp(_) | Expr::DictComp(_) | Expr::Generator(_) => {
                let was = std::mem::replace(&mut self.in_loop, true);
                walk_expr(self, e);
                self.in_loop = was;
            }
            Expr::Attribute(_) | Expr::Name(_) if !self.on_cpu && self.is(e, "mlx.core.float64") => {
                let msg = "float64 on the GPU: float32, or this part on stream=mx.cpu";
                self.out.push((Rule::Float64, e.range(), msg.to_string()));
            }
            _ => walk_expr(self, e),
        }
    }
}
