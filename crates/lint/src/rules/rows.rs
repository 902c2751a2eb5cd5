//! Forward substitution written as a loop: row i of an array computed from all its rows before i
//! (`x[..., i, :i] = ... x[..., :, :i] ...`, `rows.append(f(rows[j] for j in range(i)))`,
//! `x = mx.concatenate([x, f(x)])`). A loop that reads only the row before (a scan: `h[t - 1]`,
//! `hs[-1]`) or its own row is not one.

use crate::imports::Imports;
use crate::lower::write_expr;
use ruff_python_ast::visitor::{walk_expr, walk_stmt, Visitor};
use ruff_python_ast::{Comprehension, Expr, Stmt};
use ruff_text_size::{Ranged, TextRange};

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
                // `len(x)` and `x.shape` read how many, not the values; `a if x else b` whether any
                Expr::Call(c) if matches!(c.func.as_ref(), Expr::Name(f) if f.id.as_str() == "len") => {}
                Expr::If(i) => {
                    self.visit_expr(&i.body);
                    self.visit_expr(&i.orelse);
                }
                Expr::Attribute(a) if crate::term::METADATA.contains(&a.attr.as_str()) => {}
                _ => walk_expr(self, e),
            }
        }
    }
    let mut r = Reads { name, found: Vec::new() };
    r.visit_expr(e);
    r.found
}

/// The loop being read: its variable, and the variables of the loops over `range(var)` in it.
struct Loop<'a> {
    var: Option<&'a str>,
    inner: Vec<String>,
    imports: &'a Imports,
    /// Whether a name holds a Python list (`[0] * n`): a loop over one is no array solve.
    python_list: &'a dyn Fn(&str) -> bool,
}

fn name_of(e: &Expr) -> Option<&str> {
    match e {
        Expr::Name(n) => Some(n.id.as_str()),
        _ => None,
    }
}

fn index_text(e: &Expr) -> String {
    let mut s = String::new();
    write_expr(e, &mut s);
    s
}

/// Whether `e` is arithmetic on arrays: operators, MLX functions, array methods and `sum`, with
/// no call of anything else (a model, a block, a list's `pop`: then the loop is no solve).
fn arithmetic(e: &Expr, imports: &Imports) -> bool {
    struct Finder<'i> {
        imports: &'i Imports,
        computes: bool,
        other_call: bool,
    }
    impl<'a> Visitor<'a> for Finder<'_> {
        fn visit_expr(&mut self, e: &'a Expr) {
            match e {
                Expr::BinOp(_) => self.computes = true,
                Expr::Call(c) => {
                    let mlx = self.imports.path(&c.func).is_some_and(|p| p.starts_with("mlx.core."));
                    let builtin =
                        matches!(c.func.as_ref(), Expr::Name(n) if matches!(n.id.as_str(), "sum" | "range" | "len"));
                    // array methods (`x.sum(-2)`), not a list's or a model's
                    const ARRAY: &[&str] = &[
                        "sum",
                        "mean",
                        "max",
                        "min",
                        "prod",
                        "square",
                        "sqrt",
                        "exp",
                        "log",
                        "abs",
                        "astype",
                        "reshape",
                        "transpose",
                        "swapaxes",
                        "squeeze",
                        "flatten",
                        "cumsum",
                        "T",
                    ];
                    let method = matches!(c.func.as_ref(), Expr::Attribute(a) if ARRAY.contains(&a.attr.as_str()));
                    self.computes |= mlx || builtin || method;
                    self.other_call |= !(mlx || builtin || method);
                }
                _ => {}
            }
            walk_expr(self, e);
        }
    }
    let mut f = Finder { imports, computes: false, other_call: false };
    f.visit_expr(e);
    f.computes && !f.other_call
}

impl<'a> Loop<'a> {
    fn new(body: &[Stmt], var: Option<&'a str>, imports: &'a Imports, python_list: &'a dyn Fn(&str) -> bool) -> Self {
        /// Targets of loops and comprehensions over `range(...var...)`.
        struct Inner<'v>(Option<&'v str>, Vec<String>);
        impl Inner<'_> {
            fn over_var(&mut self, target: &Expr, iter: &Expr) {
                let Expr::Call(c) = iter else { return };
                let range = matches!(c.func.as_ref(), Expr::Name(n) if n.id.as_str() == "range");
                let on_var = self.0.is_some_and(|v| c.arguments.args.iter().any(|a| !reads(a, v).is_empty()));
                if let (true, true, Some(t)) = (range, on_var, name_of(target)) {
                    self.1.push(t.to_string());
                }
            }
        }
        impl<'b> Visitor<'b> for Inner<'_> {
            fn visit_stmt(&mut self, s: &'b Stmt) {
                match s {
                    Stmt::FunctionDef(_) | Stmt::ClassDef(_) => {}
                    Stmt::For(f) => {
                        self.over_var(&f.target, &f.iter);
                        walk_stmt(self, s);
                    }
                    _ => walk_stmt(self, s),
                }
            }
            fn visit_comprehension(&mut self, c: &'b Comprehension) {
                self.over_var(&c.target, &c.iter);
                ruff_python_ast::visitor::walk_comprehension(self, c);
            }
        }
        let mut inner = Inner(var, Vec::new());
        body.iter().for_each(|s| inner.visit_stmt(s));
        Loop { var, inner: inner.1, imports, python_list }
    }

    /// Whether an index reads the rows solved before row `i`: those before it (`:i`, forward
    /// substitution), those after it (`i+1:`, back substitution), or an inner `j`.
    fn earlier(&self, idx: &str) -> bool {
        idx.split(',').any(|part| {
            let solved = self.var.is_some_and(|v| part == format!(":{v}") || part == format!("{v}+1:"));
            solved || self.inner.iter().any(|j| part == j)
        })
    }

    /// Whether `e` reads the rows of `name` solved before this one, at an index other than the
    /// target's own; with `whole`, a read of all of it (the rows so far of a growing array) counts.
    fn reads_earlier_rows(&self, e: &Expr, name: &str, own: Option<&str>, whole: bool) -> bool {
        reads(e, name).iter().any(|idx| Some(idx.as_str()) != own && ((whole && idx.is_empty()) || self.earlier(idx)))
    }

    /// `x[idx] = f(x's earlier rows)` with the loop variable in idx.
    fn row_from_rows(&self, target: &Expr, value: &Expr) -> bool {
        let Expr::Subscript(s) = target else { return false };
        let Some(base) = name_of(&s.value) else { return false };
        if (self.python_list)(base) {
            return false;
        }
        let on_var = self.var.is_none_or(|v| !reads(&s.slice, v).is_empty());
        on_var
            && arithmetic(value, self.imports)
            && self.reads_earlier_rows(value, base, Some(&index_text(&s.slice)), false)
    }

    /// The names that hold values computed from the rows of `list` when `at` runs: the body's
    /// assignments before it, in order (a later assignment from something else takes a name back).
    fn derived_from(&self, body: &[Stmt], list: &str, at: TextRange) -> Vec<String> {
        let mut all = Vec::new();
        assignments(body, &mut all);
        let mut derived: Vec<String> = Vec::new();
        for (targets, value, _) in all.into_iter().filter(|(_, _, r)| r.end() <= at.start()) {
            let computed = arithmetic(value, self.imports);
            let direct = computed && self.reads_earlier_rows(value, list, None, true);
            let through = computed && derived.iter().any(|d| !reads(value, d).is_empty());
            for t in targets {
                derived.retain(|d| d != t);
                if direct || through {
                    derived.push(t.to_string());
                }
            }
        }
        derived
    }

    /// `x = concatenate([x, f(x)])` or `rows.append(f(earlier rows))`.
    fn grows_from_itself(&self, stmt: &Stmt, body: &[Stmt]) -> bool {
        match stmt {
            Stmt::Assign(a) => {
                let (Some(x), Expr::Call(c)) = (a.targets.first().and_then(name_of), a.value.as_ref()) else {
                    return false;
                };
                let joins =
                    self.imports.path(&c.func).is_some_and(|p| p.ends_with(".concatenate") || p.ends_with(".stack"));
                let parts: Vec<&Expr> = match c.arguments.args.first() {
                    Some(Expr::List(l)) => l.elts.iter().collect(),
                    Some(Expr::Tuple(t)) => t.elts.iter().collect(),
                    _ => return false,
                };
                let starts_with_x = parts.first().and_then(|p| name_of(p)) == Some(x);
                let new_row = |p: &&Expr| arithmetic(p, self.imports) && self.reads_earlier_rows(p, x, None, true);
                joins && starts_with_x && parts[1..].iter().any(new_row)
            }
            Stmt::Expr(e) => {
                let Expr::Call(c) = e.value.as_ref() else { return false };
                let Expr::Attribute(m) = c.func.as_ref() else { return false };
                let Some(list) = name_of(&m.value) else { return false };
                let derived = self.derived_from(body, list, stmt.range());
                let from_rows = |a: &Expr| {
                    let names_derived = derived.iter().any(|d| !reads(a, d).is_empty());
                    (arithmetic(a, self.imports) && self.reads_earlier_rows(a, list, None, true))
                        || (names_derived && (matches!(a, Expr::Name(_)) || arithmetic(a, self.imports)))
                };
                m.attr.as_str() == "append" && c.arguments.args.iter().any(from_rows)
            }
            _ => false,
        }
    }

    /// The first statement in `stmts` (nested blocks included, functions not) computing a row
    /// from the earlier rows; `body` is the whole loop body.
    fn find(&self, stmts: &[Stmt], body: &[Stmt]) -> Option<TextRange> {
        stmts.iter().find_map(|s| {
            let hit = match s {
                Stmt::Assign(a) => a.targets.iter().any(|t| self.row_from_rows(t, &a.value)),
                Stmt::AugAssign(a) => self.row_from_rows(&a.target, &a.value),
                Stmt::If(i) => {
                    let nested = std::iter::once(&i.body).chain(i.elif_else_clauses.iter().map(|c| &c.body));
                    return nested.into_iter().find_map(|b| self.find(b, body));
                }
                Stmt::For(f) => return self.find(&f.body, body),
                Stmt::While(w) => return self.find(&w.body, body),
                Stmt::With(w) => return self.find(&w.body, body),
                _ => false,
            };
            (hit || self.grows_from_itself(s, body)).then(|| s.range())
        })
    }
}

/// Every assignment in a body, in order, nested blocks included: the names it binds (those of
/// a tuple target too), the value, and where it is.
fn assignments<'a>(body: &'a [Stmt], out: &mut Vec<(Vec<&'a str>, &'a Expr, TextRange)>) {
    fn names<'a>(target: &'a Expr, out: &mut Vec<&'a str>) {
        match target {
            Expr::Name(n) => out.push(n.id.as_str()),
            Expr::Tuple(t) => t.elts.iter().for_each(|e| names(e, out)),
            Expr::List(l) => l.elts.iter().for_each(|e| names(e, out)),
            _ => {}
        }
    }
    for s in body {
        match s {
            Stmt::Assign(a) => {
                let mut bound = Vec::new();
                a.targets.iter().for_each(|t| names(t, &mut bound));
                out.push((bound, a.value.as_ref(), a.range));
            }
            Stmt::AugAssign(a) => out.push((name_of(&a.target).into_iter().collect(), a.value.as_ref(), a.range)),
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

/// The statement of a loop body (loop variable `var`) that computes a row from the earlier rows.
pub fn row_update(
    body: &[Stmt],
    var: Option<&str>,
    imports: &Imports,
    python_list: &dyn Fn(&str) -> bool,
) -> Option<TextRange> {
    Loop::new(body, var, imports, python_list).find(body, body)
}
