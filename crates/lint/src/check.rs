//! One file, checked: the module's statements, then each function with the module's constants in
//! scope; every expression through the term rules, every call and loop through the rules over them.

use crate::imports::Imports;
use crate::lower::{Callee, Helper, Helpers, Scope};
use crate::registry::Rule;
use crate::rules::calls::{loop_kind, Calls, Literal, Looping, Raw};
use crate::rules::rows::row_update;
use crate::rules::{Ctx, TERM_RULES};
use crate::term::{Op, Term, T};
use ruff_python_ast::visitor::{walk_expr, walk_stmt, Visitor};
use ruff_python_ast::{Expr, Stmt, StmtFunctionDef};
use ruff_text_size::Ranged;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

struct Walker<'a> {
    source: &'a str,
    imports: &'a Imports,
    strings: HashMap<String, Literal>,
    /// The module's constants (numbers, strings, tuples of them), seen by every function.
    constants: HashMap<String, T>,
    /// Functions still to check, with the class of the methods among them.
    pending: Vec<(Option<&'a str>, &'a StmtFunctionDef)>,
    /// The file sets a CPU default device: float64 is fine.
    cpu_file: bool,
    /// Only lowering (the first pass, for what functions return): no rule runs.
    quiet: bool,
    calls: CallSites,
    raw: Vec<Raw>,
}

/// Where a statement sits: in a loop, on the CPU stream.
#[derive(Clone, Copy)]
struct Flags {
    in_loop: Looping,
    on_cpu: bool,
}

/// Per function: the term rules' keys already reported (one finding per key node, however often
/// the term is used again).
struct Reported(Vec<(Rule, T)>);

/// Every finding of a parsed module, unsorted, before lines are known.
pub fn module(source: &str, body: &[Stmt]) -> Vec<Raw> {
    let imports = Imports::of(body);
    if !imports.mlx() {
        return Vec::new();
    }
    let mut w = Walker {
        source,
        imports: &imports,
        strings: HashMap::new(),
        constants: HashMap::new(),
        pending: Vec::new(),
        cpu_file: sets_cpu_device(body, &imports),
        quiet: false,
        calls: call_sites(body, &imports),
        raw: Vec::new(),
    };
    let none = Helpers::new();
    let mut scope = Scope::new(&imports, &none, HashMap::new());
    let flags = Flags { in_loop: Looping::Outside, on_cpu: w.cpu_file };
    w.block(&mut scope, body, &Ctx { runs_every_call: false, compiled: false }, flags, &mut Reported(Vec::new()));
    w.constants = scope.env.into_iter().filter(|(_, t)| is_constant(t)).collect();
    let functions = std::mem::take(&mut w.pending);
    // First what each function returns, in source order (a helper before its callers), then the findings.
    let mut helpers = Helpers::new();
    w.quiet = true;
    for &(class, f) in &functions {
        let (kept, pending) = (w.raw.len(), w.pending.len());
        let returns = w.function(class, f, &helpers);
        w.raw.truncate(kept);
        w.pending.truncate(pending);
        let callee = callee(class, f);
        let mut params: Vec<String> =
            f.parameters.iter_non_variadic_params().map(|p| p.parameter.name.to_string()).collect();
        if matches!(callee, Callee::Method { .. }) {
            params.remove(0);
        }
        if let Some(returns) = returns {
            helpers.insert(callee, Helper { params, returns });
        }
    }
    w.quiet = false;
    w.pending = functions;
    w.pending.reverse();
    while let Some((class, f)) = w.pending.pop() {
        w.function(class, f, &helpers);
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

/// What a function's decorators name: `@mx.compile` gives `mlx.core.compile`, and
/// `@partial(mx.compile, shapeless=True)` both `functools.partial` and `mlx.core.compile`.
fn decorators(f: &StmtFunctionDef, imports: &Imports) -> Vec<String> {
    let name = |e: &Expr| match e {
        Expr::Name(n) => imports.path(e).or_else(|| Some(n.id.to_string())),
        _ => imports.path(e),
    };
    let mut out = Vec::new();
    for d in &f.decorator_list {
        match &d.expression {
            Expr::Call(c) => {
                out.extend(name(&c.func));
                out.extend(c.arguments.args.first().and_then(name));
            }
            e => out.extend(name(e)),
        }
    }
    out
}

/// Decorators that make a function run once per argument: its tables are built once.
fn cached(f: &StmtFunctionDef, imports: &Imports) -> bool {
    decorators(f, imports)
        .iter()
        .any(|p| matches!(p.rsplit('.').next(), Some("lru_cache" | "cache" | "cached_property")))
}

fn compiled(f: &StmtFunctionDef, imports: &Imports) -> bool {
    decorators(f, imports).iter().any(|p| p == "mlx.core.compile")
}

/// How callers call a function: by name, or as `self.name` when it is a method of `class`.
fn callee(class: Option<&str>, f: &StmtFunctionDef) -> Callee {
    let takes_self = f.parameters.args.first().is_some_and(|p| p.parameter.name.as_str() == "self");
    match class {
        Some(class) if takes_self => Callee::Method { class: class.to_string(), name: f.name.to_string() },
        _ => Callee::Function(f.name.to_string()),
    }
}

/// What the file's calls of its own functions say about them.
#[derive(Default)]
struct CallSites {
    /// Called only where calls happen once (module level, `__init__`, cached helpers): what they
    /// build is built once.
    once: HashSet<Callee>,
    /// Called only under `with mx.stream(mx.cpu)` (or defined there): float64 is fine in them.
    on_cpu: HashSet<Callee>,
    /// Evaluating (`mx.eval`, `mx.async_eval`), themselves or through what they call.
    evaluating: HashSet<Callee>,
}

impl CallSites {
    /// Whether this call (in a method of `class`) is of a function that evaluates.
    fn evaluates(&self, c: &ruff_python_ast::ExprCall, class: Option<&str>) -> bool {
        Callee::called(&c.func, class).is_some_and(|f| self.evaluating.contains(&f))
    }
}

/// A call of one of the file's functions: from which function (None: module level), whether that
/// function runs once (`__init__`, cached), and whether it sits under `with mx.stream(mx.cpu)`.
struct Site {
    caller: Option<Callee>,
    caller_once: bool,
    on_cpu: bool,
}

fn call_sites(body: &[Stmt], imports: &Imports) -> CallSites {
    struct Walk<'i> {
        imports: &'i Imports,
        /// The functions being walked, innermost last, and whether each runs once.
        functions: Vec<(Callee, bool)>,
        classes: Vec<String>,
        cpu: usize,
        sites: HashMap<Callee, Vec<Site>>,
        defined_on_cpu: HashSet<Callee>,
        evaluating: HashSet<Callee>,
    }
    impl<'a> Visitor<'a> for Walk<'_> {
        fn visit_stmt(&mut self, s: &'a Stmt) {
            match s {
                Stmt::FunctionDef(f) => {
                    let me = callee(self.classes.last().map(String::as_str), f);
                    if self.cpu > 0 {
                        self.defined_on_cpu.insert(me.clone());
                    }
                    let once = f.name.as_str() == "__init__" || cached(f, self.imports);
                    self.functions.push((me, once));
                    let classes = std::mem::take(&mut self.classes);
                    walk_stmt(self, s);
                    self.classes = classes;
                    self.functions.pop();
                }
                Stmt::ClassDef(c) => {
                    self.classes.push(c.name.to_string());
                    walk_stmt(self, s);
                    self.classes.pop();
                }
                Stmt::With(w) => {
                    let cpu = w.items.iter().any(|i| mentions(&i.context_expr, self.imports, "mlx.core.cpu"));
                    self.cpu += usize::from(cpu);
                    walk_stmt(self, s);
                    self.cpu -= usize::from(cpu);
                }
                _ => walk_stmt(self, s),
            }
        }
        fn visit_expr(&mut self, e: &'a Expr) {
            if let Expr::Call(c) = e {
                let path = self.imports.path(&c.func);
                if matches!(path.as_deref(), Some("mlx.core.eval" | "mlx.core.async_eval")) {
                    self.evaluating.extend(self.functions.last().map(|(f, _)| f.clone()));
                }
                let class = match self.functions.last() {
                    Some((Callee::Method { class, .. }, _)) => Some(class.as_str()),
                    _ => None,
                };
                if let Some(called) = Callee::called(&c.func, class) {
                    let (caller, caller_once) = match self.functions.last() {
                        Some((f, once)) => (Some(f.clone()), *once),
                        None => (None, true),
                    };
                    self.sites.entry(called).or_default().push(Site { caller, caller_once, on_cpu: self.cpu > 0 });
                }
            }
            walk_expr(self, e);
        }
    }
    let mut w = Walk {
        imports,
        functions: Vec::new(),
        classes: Vec::new(),
        cpu: 0,
        sites: HashMap::new(),
        defined_on_cpu: HashSet::new(),
        evaluating: HashSet::new(),
    };
    body.iter().for_each(|s| w.visit_stmt(s));
    // through helpers of helpers: called only from functions that run once (or on the CPU)
    let once = closure(&w.sites, HashSet::new(), |site, set| {
        site.caller_once || site.caller.as_ref().is_some_and(|c| set.contains(c))
    });
    let on_cpu = closure(&w.sites, w.defined_on_cpu, |site, set| {
        site.on_cpu || site.caller.as_ref().is_some_and(|c| set.contains(c))
    });
    // a function that calls an evaluating one evaluates too
    let mut evaluating = w.evaluating;
    loop {
        let callers: Vec<Callee> = (w.sites.iter())
            .filter(|(callee, _)| evaluating.contains(*callee))
            .flat_map(|(_, sites)| sites.iter().filter_map(|s| s.caller.clone()))
            .filter(|c| !evaluating.contains(c))
            .collect();
        if callers.is_empty() {
            break;
        }
        evaluating.extend(callers);
    }
    CallSites { once, on_cpu, evaluating }
}

/// The callees every call site of which `holds` (given the set so far), grown until it stops.
fn closure(
    sites: &HashMap<Callee, Vec<Site>>,
    mut set: HashSet<Callee>,
    holds: impl Fn(&Site, &HashSet<Callee>) -> bool,
) -> HashSet<Callee> {
    loop {
        let grown: Vec<Callee> = (sites.iter())
            .filter(|(c, s)| !set.contains(*c) && s.iter().all(|site| holds(site, &set)))
            .map(|(c, _)| c.clone())
            .collect();
        if grown.is_empty() {
            return set;
        }
        set.extend(grown);
    }
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
    fn function(&mut self, class: Option<&'a str>, f: &'a StmtFunctionDef, helpers: &Helpers) -> Option<T> {
        let mut scope = Scope::new(self.imports, helpers, self.constants.clone());
        scope.class = class;
        for p in f.parameters.iter_non_variadic_params() {
            let name = p.parameter.name.to_string();
            let number = matches!(p.default.as_deref(), Some(Expr::NumberLiteral(_)));
            let t = if number { Term::Scalar(name.clone()) } else { Term::Name(name.clone()) };
            scope.env.insert(name, Rc::new(t));
        }
        let once =
            f.name.as_str() == "__init__" || cached(f, self.imports) || self.calls.once.contains(&callee(class, f));
        let ctx = Ctx { runs_every_call: !once, compiled: compiled(f, self.imports) };
        let on_cpu = self.cpu_file || self.calls.on_cpu.contains(&callee(class, f));
        let flags = Flags { in_loop: Looping::Outside, on_cpu };
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
            Stmt::FunctionDef(f) => self.pending.push((None, f)),
            Stmt::ClassDef(c) => {
                let methods = c.body.iter().filter_map(|s| s.as_function_def_stmt());
                self.pending.extend(methods.map(|f| (Some(c.name.as_str()), f)));
            }
            Stmt::Assign(a) => {
                let v = self.expr(scope, &a.value, ctx, flags, seen);
                for t in &a.targets {
                    if let (Expr::Name(n), Some(lit)) = (t, Literal::of(&a.value)) {
                        self.strings.insert(n.id.to_string(), lit);
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
                self.branch_on_array(&i.test, flags);
                // `if step % 10 == 0:` runs now and then: a sync there is a report, not a stall
                let in_loop = if periodic(&i.test) { Looping::Outside } else { flags.in_loop };
                let now_and_then = Flags { in_loop, ..flags };
                // each branch starts from what the names held before the `if`
                let before = scope.env.clone();
                self.block(scope, &i.body, ctx, now_and_then, seen);
                let mut branches = vec![std::mem::replace(&mut scope.env, before.clone())];
                for c in &i.elif_else_clauses {
                    if let Some(test) = &c.test {
                        self.expr(scope, test, ctx, flags, seen);
                    }
                    self.block(scope, &c.body, ctx, flags, seen);
                    branches.push(std::mem::replace(&mut scope.env, before.clone()));
                }
                let exhaustive = i.elif_else_clauses.last().is_some_and(|c| c.test.is_none());
                scope.env = merge(&before, branches, exhaustive);
            }
            Stmt::For(f) => {
                self.expr(scope, &f.iter, ctx, flags, seen);
                scope.assign(&f.target, crate::lower::opaque(f.target.range()));
                let var = match f.target.as_ref() {
                    Expr::Name(n) => Some(n.id.as_str()),
                    _ => None,
                };
                self.row_update(scope, &f.body, var);
                let evaluating = |c: &ruff_python_ast::ExprCall| self.calls.evaluates(c, scope.class);
                let looped = Flags { in_loop: loop_kind(flags.in_loop, &f.body, self.imports, &evaluating), ..flags };
                self.block(scope, &f.body, ctx, looped, seen);
                self.block(scope, &f.orelse, ctx, flags, seen);
            }
            Stmt::While(w) => {
                let evaluating = |c: &ruff_python_ast::ExprCall| self.calls.evaluates(c, scope.class);
                let looped = Flags { in_loop: loop_kind(flags.in_loop, &w.body, self.imports, &evaluating), ..flags };
                self.expr(scope, &w.test, ctx, looped, seen);
                self.branch_on_array(&w.test, looped);
                self.row_update(scope, &w.body, None);
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

    /// `if mx.any(mask):` in a loop that computes each step: the branch reads the array to the host.
    fn branch_on_array(&mut self, test: &Expr, flags: Flags) {
        let Expr::Call(c) = test else { return };
        // (a dtype query answers with a Python bool)
        let path = self.imports.path(&c.func).unwrap_or_default();
        let query = matches!(path.rsplit('.').next(), Some("issubdtype" | "can_cast" | "result_type"));
        let mlx = path.starts_with("mlx.core.") && !query;
        if mlx && flags.in_loop == Looping::Works {
            let msg = "a branch on an array in a loop: a host sync each step; compute both sides and mx.where";
            self.raw.push((Rule::HostSyncInLoop, test.range(), msg.to_string()));
        }
    }

    fn row_update(&mut self, scope: &Scope, body: &[Stmt], var: Option<&str>) {
        // `[0] * n` or `[...]`: a Python list
        let python_list = |name: &str| {
            scope.env.get(name).is_some_and(|t| match t.as_ref() {
                Term::Tuple(_) => true,
                Term::Op(Op::Mul, args) => args.iter().any(|a| matches!(a.as_ref(), Term::Tuple(_))),
                _ => false,
            })
        };
        if let Some(at) = row_update(body, var, self.imports, &python_list) {
            let msg = "rows computed one at a time from earlier rows (forward substitution): one triangular solve";
            self.raw.push((Rule::RowUpdateLoop, at, msg.to_string()));
        }
    }

    /// Lowers `e`, runs the term rules over it and its parts, and the call rules over it.
    fn expr(&mut self, scope: &mut Scope, e: &Expr, ctx: &Ctx, flags: Flags, seen: &mut Reported) -> T {
        let before = scope.seen.len();
        let t = scope.expr(e);
        if self.quiet {
            scope.seen.truncate(before);
            return t;
        }
        for (range, term) in &scope.seen[before..] {
            for (rule, check) in TERM_RULES {
                let Some(hit) = check(term, ctx) else { continue };
                // a match made only of a helper's inlined body is the helper's finding, made there
                if scope.helper_nodes.contains(&Rc::as_ptr(&hit.span)) {
                    continue;
                }
                let known = seen.0.iter().any(|(r, k)| r == rule && Rc::ptr_eq(k, &hit.key));
                if !known {
                    seen.0.push((*rule, hit.key));
                    self.raw.push((*rule, *range, hit.message));
                }
            }
        }
        scope.seen.truncate(before);
        let evaluating = |c: &ruff_python_ast::ExprCall| self.calls.evaluates(c, scope.class);
        let mut calls = Calls {
            imports: self.imports,
            env: &scope.env,
            strings: &self.strings,
            source: self.source,
            in_loop: flags.in_loop,
            evaluating: &evaluating,
            on_cpu: flags.on_cpu,
            out: Vec::new(),
        };
        calls.visit_expr(e);
        self.raw.append(&mut calls.out);
        t
    }
}

/// What names hold after an `if`'s branches, each run from what the names held before (an `elif`
/// never sees what the `if` branch did). Where some path skips every branch (no `else`), a name
/// keeps what it held before: `if mask is not None: scores = scores + mask` leaves the scores a
/// product still, and two `if`s that each transpose never chain. Where every path runs a branch,
/// the last branch's value stands. Names new in a branch keep its value.
fn merge(before: &HashMap<String, T>, branches: Vec<HashMap<String, T>>, exhaustive: bool) -> HashMap<String, T> {
    let mut merged = before.clone();
    for branch in branches {
        for (name, value) in branch {
            let changed = before.get(&name).is_none_or(|old| !Rc::ptr_eq(old, &value));
            if changed && (exhaustive || !before.contains_key(&name)) {
                merged.insert(name, value);
            }
        }
    }
    merged
}

/// Whether `e` or an expression in it satisfies `pred`.
fn any_expr(e: &Expr, pred: &dyn Fn(&Expr) -> bool) -> bool {
    struct Finder<'p>(&'p dyn Fn(&Expr) -> bool, bool);
    impl<'a> Visitor<'a> for Finder<'_> {
        fn visit_expr(&mut self, e: &'a Expr) {
            self.1 |= (self.0)(e);
            if !self.1 {
                walk_expr(self, e);
            }
        }
    }
    let mut f = Finder(pred, false);
    f.visit_expr(e);
    f.1
}

/// A test with a remainder in it (`step % 100 == 0`).
fn periodic(test: &Expr) -> bool {
    any_expr(test, &|e| matches!(e, Expr::BinOp(b) if b.op == ruff_python_ast::Operator::Mod))
}

fn mentions(e: &Expr, imports: &Imports, path: &str) -> bool {
    any_expr(e, &|x| imports.path(x).as_deref() == Some(path))
}
