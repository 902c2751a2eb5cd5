//! Rules over calls: host syncs in loops, float64, kernel launches and their sources.

use super::kernel;
use crate::imports::Imports;
use crate::registry::Rule;
use crate::term::{Term, T};
use ruff_python_ast::visitor::{walk_expr, Visitor};
use ruff_python_ast::Expr;
use ruff_text_size::{Ranged, TextRange, TextSize};
use std::collections::HashMap;

/// A finding before it has a line: the rule, where, and the message.
pub type Raw = (Rule, TextRange, String);

/// `self.name`
fn on_self(a: &ruff_python_ast::ExprAttribute) -> bool {
    matches!(a.value.as_ref(), Expr::Name(n) if n.id.as_str() == "self")
}

/// What a loop body does each step: device work (an MLX op, a call of a function or method of
/// the file's own), and whether it evaluates (`mx.eval`, `mx.async_eval`).
#[derive(Default)]
struct Work {
    device: bool,
    evaluates: bool,
}

struct WorkFinder<'i> {
    imports: &'i Imports,
    /// Whether a call is of a function of the file's that evaluates (`mx.eval` in it).
    evaluating: &'i dyn Fn(&ruff_python_ast::ExprCall) -> bool,
    work: Work,
}

impl<'a> Visitor<'a> for WorkFinder<'_> {
    fn visit_stmt(&mut self, s: &'a ruff_python_ast::Stmt) {
        if !matches!(s, ruff_python_ast::Stmt::FunctionDef(_) | ruff_python_ast::Stmt::ClassDef(_)) {
            ruff_python_ast::visitor::walk_stmt(self, s);
        }
    }
    fn visit_expr(&mut self, e: &'a Expr) {
        if let Expr::Call(c) = e {
            const BUILTINS: &[&str] = &[
                "len",
                "range",
                "print",
                "int",
                "float",
                "str",
                "bool",
                "enumerate",
                "zip",
                "list",
                "dict",
                "set",
                "tuple",
                "sorted",
                "reversed",
                "min",
                "max",
                "sum",
                "abs",
                "round",
                "isinstance",
                "next",
                "iter",
                "repr",
                "format",
                "chr",
                "ord",
                "map",
                "filter",
                "any",
                "all",
                "getattr",
                "setattr",
                "hasattr",
                "type",
                "open",
                "divmod",
                "hash",
                "id",
                "super",
            ];
            let path = self.imports.path(&c.func);
            let eval = matches!(path.as_deref(), Some("mlx.core.eval" | "mlx.core.async_eval"));
            let mlx = path.as_deref().is_some_and(|p| p.starts_with("mlx."));
            // a function of the file (a class, `ValueError(...)`, builds an object, not device work)
            let function = matches!(c.func.as_ref(), Expr::Name(n) if path.is_none()
                && !BUILTINS.contains(&n.id.as_str()) && !n.id.starts_with(char::is_uppercase));
            // a method of the file's own (not a test's `self.assertEqual`)
            let own_method =
                matches!(c.func.as_ref(), Expr::Attribute(a) if on_self(a) && !a.attr.starts_with("assert"));
            self.work.evaluates |= eval || (self.evaluating)(c);
            self.work.device |= (mlx && !eval) || function || own_method;
        }
        walk_expr(self, e);
    }
}

/// Where a read of a value to the host (`.item()`, `.tolist()`) sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Looping {
    Outside,
    /// In a loop that reads values computed before it (or evaluates each step itself): a read
    /// stalls only when it slices a new value each step (`labels[i].item()`).
    Reads,
    /// In a loop that computes on the device each step and does not evaluate it: every read stalls.
    Works,
}

impl Looping {
    /// The kind of a loop with this body (or element), inside `self`.
    fn enter(self, work: Work) -> Looping {
        match (self, work.device && !work.evaluates) {
            (Looping::Works, _) | (_, true) => Looping::Works,
            _ => Looping::Reads,
        }
    }
}

/// The kind of loop a loop statement's body makes, inside `outer`.
pub fn loop_kind(
    outer: Looping,
    body: &[ruff_python_ast::Stmt],
    imports: &Imports,
    evaluating: &dyn Fn(&ruff_python_ast::ExprCall) -> bool,
) -> Looping {
    let mut f = WorkFinder { imports, evaluating, work: Work::default() };
    body.iter().for_each(|s| f.visit_stmt(s));
    outer.enter(f.work)
}

/// A string literal in the file: a kernel source, plain or an f-string.
#[derive(Clone)]
pub struct Literal {
    range: TextRange,
    /// An f-string's `{...}` replacement fields (None: a plain string).
    holes: Option<Vec<TextRange>>,
}

impl Literal {
    pub fn of(e: &Expr) -> Option<Literal> {
        match e {
            Expr::StringLiteral(s) => Some(Literal { range: s.range, holes: None }),
            Expr::FString(f) => {
                let holes = f.value.elements().filter_map(|e| e.as_interpolation()).map(|i| i.range).collect();
                Some(Literal { range: f.range, holes: Some(holes) })
            }
            _ => None,
        }
    }

    /// The literal's text as written, replacement fields blanked and doubled braces made single
    /// (so that braces are C's blocks), every offset kept.
    fn text(&self, source: &str) -> String {
        let mut text = source[self.range].to_string();
        let Some(holes) = &self.holes else { return text };
        for hole in holes {
            let a = (hole.start() - self.range.start()).to_usize();
            let b = (hole.end() - self.range.start()).to_usize();
            if let Some(part) = text.get(a..b) {
                let blank = " ".repeat(part.len());
                text.replace_range(a..b, &blank);
            }
        }
        text.replace("{{", "{ ").replace("}}", "} ")
    }
}

/// The checks over one statement's expressions (not its nested statements).
pub struct Calls<'a> {
    pub imports: &'a Imports,
    pub env: &'a HashMap<String, T>,
    /// The file's string constants by name (the last assigned): kernel sources passed by name.
    pub strings: &'a HashMap<String, Literal>,
    pub source: &'a str,
    pub in_loop: Looping,
    /// Whether a call is of a function of the file's that evaluates.
    pub evaluating: &'a dyn Fn(&ruff_python_ast::ExprCall) -> bool,
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
                // arithmetic and comparisons on a NumPy value stay NumPy
                Term::Op(_, args) => args.iter().any(|a| numpy(a)),
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

    /// A read of an array's values to the host: `.item()`, `.tolist()`, or `int(...)`, `float(...)`,
    /// `bool(...)` of an MLX result; how it is spelled, and the array read.
    fn host_read<'e>(&self, c: &'e ruff_python_ast::ExprCall) -> Option<(String, &'e Expr)> {
        match c.func.as_ref() {
            Expr::Attribute(m) if matches!(m.attr.as_str(), "item" | "tolist") && c.arguments.args.is_empty() => {
                Some((format!(".{}()", m.attr), &m.value))
            }
            Expr::Name(n) if matches!(n.id.as_str(), "int" | "float" | "bool") && c.arguments.args.len() == 1 => {
                let arg = &c.arguments.args[0];
                const REDUCTIONS: &[&str] = &["sum", "mean", "max", "min", "prod", "argmax", "argmin", "any", "all"];
                let mlx = match arg {
                    Expr::Call(a) => match a.func.as_ref() {
                        Expr::Attribute(m) if self.imports.path(&a.func).is_none() => {
                            REDUCTIONS.contains(&m.attr.as_str())
                        }
                        f => self.imports.path(f).is_some_and(|p| p.starts_with("mlx.core.")),
                    },
                    _ => false,
                };
                mlx.then(|| (format!("{}(...)", n.id), arg))
            }
            _ => None,
        }
    }

    fn call(&mut self, c: &ruff_python_ast::ExprCall) {
        if let Some((read, value)) = self.host_read(c) {
            let stalls = match self.in_loop {
                Looping::Works => true,
                Looping::Reads => matches!(value, Expr::Subscript(_)),
                Looping::Outside => false,
            };
            if stalls && !self.is_numpy(value) {
                let msg = format!(
                    "{read} in a loop: a host sync each step; keep the values on the device (or read them all \
                     once, before or after the loop)"
                );
                self.out.push((Rule::HostSyncInLoop, c.range(), msg));
            }
        }
        if self.is(&c.func, "mlx.core.fast.metal_kernel") || self.is(&c.func, "mlx.core.fast.cuda_kernel") {
            let src = c.arguments.find_argument_value("source", 3);
            self.kernel_source(src);
        }
        // float64 as an argument (`astype(mx.float64)`, `dtype=mx.float64`), not in a dtype test
        // (`x.dtype == mx.float64`) or query (`mx.can_cast`, `mx.finfo`, `self.assertEqual`)
        let query = match c.func.as_ref() {
            Expr::Attribute(a) => {
                let name = a.attr.as_str();
                name.starts_with("assert")
                    || matches!(name, "result_type" | "can_cast" | "issubdtype" | "finfo" | "iinfo")
            }
            _ => false,
        };
        let args = c.arguments.args.iter().chain(c.arguments.keywords.iter().map(|k| &k.value)).filter(|_| !query);
        let cpu = self.on_cpu || c.arguments.find_keyword("stream").is_some_and(|k| self.is(&k.value, "mlx.core.cpu"));
        if let Some(f64) = args.into_iter().find(|a| self.is(a, "mlx.core.float64")).filter(|_| !cpu) {
            let msg = "float64 on the GPU: float32, or this part on stream=mx.cpu";
            self.out.push((Rule::Float64, f64.range(), msg.to_string()));
        }
        for k in &c.arguments.keywords {
            let Some(arg) = k.arg.as_ref().map(|a| a.as_str()) else { continue };
            if arg == "threadgroup" {
                if let Expr::Tuple(t) = &k.value {
                    let dims: Option<Vec<i64>> = t.elts.iter().map(|e| self.int(e)).collect();
                    let threads = dims.map(|d| d.iter().fold(1i128, |n, &k| n.saturating_mul(i128::from(k))));
                    if let Some(n) = threads.filter(|&n| n > 1024) {
                        let msg = format!("threadgroup of {n} threads: at most 1024");
                        self.out.push((Rule::KernelThreadgroup, k.range(), msg));
                    }
                }
            }
        }
    }

    fn kernel_source(&mut self, src: Option<&Expr>) {
        let source = match src {
            Some(Expr::Name(n)) => match self.strings.get(n.id.as_str()) {
                Some(s) => s.clone(),
                None => return,
            },
            Some(e) => match Literal::of(e) {
                Some(s) => s,
                None => return,
            },
            None => return,
        };
        let range = source.range;
        let text = source.text(self.source);
        let literal = text.as_str();
        // the text inside the quotes (offsets stay the file's): past the prefix and the quotes
        let prefix = literal.find(['"', '\'']).unwrap_or(0);
        let quote = if literal[prefix..].starts_with("\"\"\"") || literal[prefix..].starts_with("'''") { 3 } else { 1 };
        let skip = prefix + quote;
        for (rule, at, msg) in kernel::check(&literal[skip..]) {
            let start = range.start() + TextSize::try_from(skip + at).unwrap_or_default();
            self.out.push((rule, TextRange::empty(start), msg));
        }
    }
}

impl Calls<'_> {
    /// A comprehension: its first iterable is read once; the rest runs once per element.
    fn comprehension(&mut self, e: &Expr) {
        let (generators, parts): (&[ruff_python_ast::Comprehension], Vec<&Expr>) = match e {
            Expr::ListComp(c) => (&c.generators, vec![&*c.elt]),
            Expr::SetComp(c) => (&c.generators, vec![&*c.elt]),
            Expr::Generator(c) => (&c.generators, vec![&*c.elt]),
            Expr::DictComp(c) => (&c.generators, c.key.as_deref().into_iter().chain([&*c.value]).collect()),
            _ => return,
        };
        // each element stalls on a read when it computes on the device first
        let mut f = WorkFinder { imports: self.imports, evaluating: self.evaluating, work: Work::default() };
        parts.iter().for_each(|p| f.visit_expr(p));
        let per_element = self.in_loop.enter(f.work);
        for (k, g) in generators.iter().enumerate() {
            if k == 0 {
                self.visit_expr(&g.iter);
            }
            let was = std::mem::replace(&mut self.in_loop, per_element);
            if k > 0 {
                self.visit_expr(&g.iter);
            }
            g.ifs.iter().for_each(|c| self.visit_expr(c));
            self.in_loop = was;
        }
        let was = std::mem::replace(&mut self.in_loop, per_element);
        parts.into_iter().for_each(|p| self.visit_expr(p));
        self.in_loop = was;
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
            Expr::ListComp(_) | Expr::SetComp(_) | Expr::DictComp(_) | Expr::Generator(_) => self.comprehension(e),
            _ => walk_expr(self, e),
        }
    }
}
