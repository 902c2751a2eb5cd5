//! One file, checked: the module's statements, then each function with the module's constants in
//! scope; every expression through the term rules, every statement through the statement rules.

use crate::imports::Imports;
use crate::lower::{Helper, Helpers, Scope};
use crate::registry::Rule;
use crate::rules::statements::{row_update, Calls, Raw};
use crate::rules::{Ctx, TERM_RULES};
use crate::term::{Op, Term, T};
use ruff_python_ast::visitor::{walk_expr, walk_stmt, Visitor};
use ruff_python_ast::{Expr, Stmt, StmtFunctionDef};
use ruff_text_size::{Ranged, TextRange};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

struct Walker<'a> {
    source: &'a str,
    imports: &'a Imports,
    strings: HashMap<String, TextRange>,
    /// The module's constants (numbers, strings, tuples of them), seen by every function.
    constants: HashMap<String, T>,
    pending: Vec<&'a StmtFunctionDef>,
    /// The file sets a CPU default device: float64 is fine.
    cpu_file: bool,
    /// Functions only ever called from `__init__`, module level or cached helpers.
    once: HashSet<String>,
    raw: Vec<Raw>,
}

/// Where a statement sits: in a loop, on the CPU stream.
#[derive(Clone, Copy)]
struct Flags {
    in_loop: bool,
    on_cpu: bool,
}

/// Per function: the term rules' keys already reported (one finding per key).
struct Reported(Vec<(Rule, T)>);

/// Every finding of a parsed module, unsorted, before lines are known.
pub fn module(source: &str, body: &[Stmt]) -> Vec<Raw> {
    let imports = Imports::of(body);
    let mut w = Walker {
        source,
        imports: &imports,
        strings: HashMap::new(),
        constants: HashMap::new(),
        pending: Vec::new(),
        cpu_file: sets_cpu_device(body, &imports),
        once: called_once_only(body, &imports),
        raw: Vec::new(),
    };
    let none = Helpers::new();
    let mut scope = Scope::new(&imports, &none, HashMap::new());
    let flags = Flags { in_loop: false, on_cpu: w.cpu_file };
    w.block(&mut scope, body, &Ctx { runs_every_call: false }, flags, &mut Reported(Vec::new()));
    w.constants = scope.env.into_iter().filter(|(_, t)| is_constant(t)).collect();
    let functions = std::mem::take(&mut w.pending);
    // First what each function returns, in source order (a helper before its callers), then the findings.
    let mut helpers = Helpers::new();
    for f in &functions {
        let (kept, pending) = (w.raw.len(), w.pending.len());
        let returns = w.function(f, &helpers);
        w.raw.truncate(kept);
        w.pending.truncate(pending);
        let key = callee_key(f);
        let mut params: Vec<String> =
            f.parameters.iter_non_variadic_params().map(|p| p.parameter.name.to_string()).collect();
        if key.starts_with("self.") {
            params.remove(0);
        }
        if let Some(returns) = returns {
            helpers.insert(key, Helper { params, returns });
        }
    }
    w.pending = functions;
    w.pending.reverse();
    while let Some(f) = w.pending.pop() {
        w.function(f, &helpers);
    }
    w.raw
}

/// Module values a function may rely on: numbers, strings, and arrays of literal shapes.
fn is_constant(t: &T) -> bool {
    match t.as_ref() {
        Term::Num(_) | Term::Str(_) | Term::Op(Op::Make(_, Some(_)), _) => true,
        Term::Tuple(items) => items.iter().all(is_constant),
        _ => false,
    }
}

/// Decorators that make a function run once per argument: its tables are built once.
fn cached(f: &StmtFunctionDef, imports: &Imports) -> bool {
    f.decorator_list.iter().any(|d| {
        let e = match &d.expression {
            Expr::Call(c) => c.func.as_ref(),
            e => e,
        };
        let path = imports.path(e).unwrap_or_default();
        let last = path.rsplit('.').next().unwrap_or("");
        matches!(last, "lru_cache" | "cache" | "cached_property")
            || matches!(e, Expr::Name(n) if matches!(n.id.as_str(), "lru_cache" | "cache"))
    })
}

/// How callers name a function: `name`, or `self.name` for a method.
fn callee_key(f: &StmtFunctionDef) -> String {
    let method = f.parameters.args.first().is_some_and(|p| p.parameter.name.as_str() == "self");
    if method {
        format!("self.{}", f.name)
    } else {
        f.name.to_string()
    }
}

/// Functions called only where calls happen once (module level, `__init__`, cached helpers):
/// what they build is built once.
fn called_once_only(body: &[Stmt], imports: &Imports) -> HashSet<String> {
    struct Calls<'i> {
        imports: &'i Imports,
        /// Whether the function being walked runs on every call (false at module level).
        every_call: Vec<bool>,
        /// Each callee, and whether some call of it runs on every call.
        callees: HashMap<String, bool>,
    }
    impl<'a> Visitor<'a> for Calls<'_> {
        fn visit_stmt(&mut self, s: &'a Stmt) {
            if let Stmt::FunctionDef(f) = s {
                let once = f.name.as_str() == "__init__" || cached(f, self.imports);
                self.every_call.push(!once);
                walk_stmt(self, s);
                self.every_call.pop();
            } else {
                walk_stmt(self, s);
            }
        }
        fn visit_expr(&mut self, e: &'a Expr) {
            if let Expr::Call(c) = e {
                let key = match c.func.as_ref() {
                    Expr::Name(n) => Some(n.id.to_string()),
                    Expr::Attribute(a) if matches!(a.value.as_ref(), Expr::Name(n) if n.id.as_str() == "self") => {
                        Some(format!("self.{}", a.attr))
                    }
                    _ => None,
                };
                if let Some(key) = key {
                    *self.callees.entry(key).or_default() |= self.every_call.last().copied().unwrap_or(false);
                }
            }
            walk_expr(self, e);
        }
    }
    let mut c = Calls { imports, every_call: Vec::new(), callees: HashMap::new() };
    for s in body {
        c.visit_stmt(s);
    }
    c.callees.into_iter().filter(|(_, every)| !every).map(|(k, _)| k).collect()
}

fn sets_cpu_device(body: &[Stmt], imports: &Imports) -> bool {
    struct Finder<'i>(&'i Imports, bool);
    impl<'a> Visitor<'a> for Finder<'_> {
        fn visit_expr(&mut self, e: &'a Expr) {
            if let Expr::Call(c) = e {
                let sets = self.0.path(&c.func).as_deref() == Some("mlx.core.set_default_device");
                let cpu = c.arguments.args.first().and_then(|a| self.0.path(a)).as_deref() == Some("mlx.core.cpu");
                self.1 |= sets && cpu;
            }
            walk_expr(self, e);
        }
    }
    let mut f = Finder(imports, false);
    for s in body {
        f.visit_stmt(s);
    }
    f.1
}

impl<'a> Walker<'a> {
    /// Checks one function; returns the term of its last `return`.
    fn function(&mut self, f: &'a StmtFunctionDef, helpers: &Helpers) -> Option<T> {
        let mut scope = Scope::new(self.imports, helpers, self.constants.clone());
        for p in f.parameters.iter_non_variadic_params() {
            let name = p.parameter.name.to_string();
            let number = matches!(p.default.as_deref(), Some(Expr::NumberLiteral(_)));
            let t = if number { Term::Scalar(name.clone()) } else { Term::Name(name.clone()) };
            scope.env.insert(name, Rc::new(t));
        }
        let once = f.name.as_str() == "__init__" || cached(f, self.imports) || self.once.contains(&callee_key(f));
        let ctx = Ctx { runs_every_call: !once };
        let flags = Flags { in_loop: false, on_cpu: self.cpu_file };
        self.block(&mut scope, &f.body, &ctx, flags, &mut Reported(Vec::new()));
        scope.returned
    }

    fn block(&mut self, scope: &mut Scope, body: &'a [Stmt], ctx: &Ctx, flags: Flags, seen: &mut Reported) {
        for s in body {
            self.stmt(scope, s, ctx, flags, seen);
        }
    }

    fn stmt(&mut self, scope: &mut Scope, s: &'a Stmt, ctx: &Ctx, flags: Flags, seen: &mut Reported) {
        match s {
            Stmt::FunctionDef(f) => self.pending.push(f),
            Stmt::ClassDef(c) => self.pending.extend(c.body.iter().filter_map(|s| s.as_function_def_stmt())),
            Stmt::Assign(a) => {
                let v = self.expr(scope, &a.value, ctx, flags, seen);
                for t in &a.targets {
                    if let (Expr::Name(n), Expr::StringLiteral(lit)) = (t, a.value.as_ref()) {
                        self.strings.insert(n.id.to_string(), lit.range);
                    }
                    scope.assign(t, v.clone());
                }
            }
            Stmt::AnnAssign(a) => {
                if let Some(value) = &a.value {
                    let v = self.expr(scope, value, ctx, flags, seen);
                    scope.assign(&a.target, v);
                }
            }
            Stmt::AugAssign(a) => {
                let v = self.expr(scope, &a.value, ctx, flags, seen);
                let old = self.expr(scope, &a.target, ctx, flags, seen);
                scope.assign(&a.target, crate::lower::binary(a.op, old, v));
            }
            Stmt::Expr(e) => drop(self.expr(scope, &e.value, ctx, flags, seen)),
            Stmt::Return(r) => {
                if let Some(v) = &r.value {
                    scope.returned = Some(self.expr(scope, v, ctx, flags, seen));
                }
            }
            Stmt::If(i) => {
                self.expr(scope, &i.test, ctx, flags, seen);
                self.block(scope, &i.body, ctx, flags, seen);
                for c in &i.elif_else_clauses {
                    if let Some(test) = &c.test {
                        self.expr(scope, test, ctx, flags, seen);
                    }
                    self.block(scope, &c.body, ctx, flags, seen);
                }
            }
            Stmt::For(f) => {
                self.expr(scope, &f.iter, ctx, flags, seen);
                scope.assign(&f.target, Rc::new(Term::Opaque(f.target.range().start().to_u32())));
                let var = match f.target.as_ref() {
                    Expr::Name(n) => Some(n.id.as_str()),
                    _ => None,
                };
                self.row_update(&f.body, var);
                self.block(scope, &f.body, ctx, Flags { in_loop: true, ..flags }, seen);
                self.block(scope, &f.orelse, ctx, flags, seen);
            }
            Stmt::While(w) => {
                let looped = Flags { in_loop: true, ..flags };
                self.expr(scope, &w.test, ctx, looped, seen);
                self.row_update(&w.body, None);
                self.block(scope, &w.body, ctx, looped, seen);
            }
            Stmt::With(w) => {
                let mut on_cpu = flags.on_cpu;
                for item in &w.items {
                    on_cpu |= mentions(&item.context_expr, self.imports, "mlx.core.cpu");
                    self.expr(scope, &item.context_expr, ctx, flags, seen);
                }
                self.block(scope, &w.body, ctx, Flags { on_cpu, ..flags }, seen);
            }
            Stmt::Try(t) => {
                self.block(scope, &t.body, ctx, flags, seen);
                for h in &t.handlers {
                    if let Some(h) = h.as_except_handler() {
                        self.block(scope, &h.body, ctx, flags, seen);
                    }
                }
                self.block(scope, &t.orelse, ctx, flags, seen);
                self.block(scope, &t.finalbody, ctx, flags, seen);
            }
            _ => {}
        }
    }

    fn row_update(&mut self, body: &[Stmt], var: Option<&str>) {
        if let Some(at) = row_update(body, var, self.imports) {
            let msg = "rows computed one at a time from earlier rows (forward substitution): one triangular solve";
            self.raw.push((Rule::RowUpdateLoop, at, msg.to_string()));
        }
    }

    /// Lowers `e`, runs the term rules over it and its parts, and the call rules over it.
    fn expr(&mut self, scope: &mut Scope, e: &Expr, ctx: &Ctx, flags: Flags, seen: &mut Reported) -> T {
        let before = scope.seen.len();
        let t = scope.expr(e);
        for (range, term) in &scope.seen[before..] {
            for (rule, check) in TERM_RULES {
                let Some(hit) = check(term, ctx) else { continue };
                // a match inside a helper's inlined body is the helper's finding, made there
                let helpers_own =
                    |(body, args): &(T, Vec<T>)| body.contains(&hit.key) && !args.iter().any(|a| a.contains(&hit.key));
                if scope.inlined.iter().any(helpers_own) {
                    continue;
                }
                let known = seen.0.iter().any(|(r, k)| r == rule && (*k == hit.key || term.contains(k)));
                if !known {
                    seen.0.push((*rule, hit.key));
                    self.raw.push((*rule, *range, hit.message));
                }
            }
        }
        scope.seen.truncate(before);
        let mut calls = Calls {
            imports: self.imports,
            env: &scope.env,
            strings: &self.strings,
            source: self.source,
            in_loop: flags.in_loop,
            on_cpu: flags.on_cpu,
            out: Vec::new(),
        };
        calls.visit_expr(e);
        self.raw.append(&mut calls.out);
        t
    }
}

fn mentions(e: &Expr, imports: &Imports, path: &str) -> bool {
    struct Finder<'i, 'p>(&'i Imports, &'p str, bool);
    impl<'a> Visitor<'a> for Finder<'_, '_> {
        fn visit_expr(&mut self, e: &'a Expr) {
            self.2 |= self.0.path(e).as_deref() == Some(self.1);
            walk_expr(self, e);
        }
    }
    let mut f = Finder(imports, path, false);
    f.visit_expr(e);
    f.2
}
