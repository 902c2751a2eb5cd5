//! What the file's names of modules mean: `import mlx.core as mx`, `from mlx import core`,
//! `from mlx.core import exp`. A dotted callee resolves to its full path (`mlx.core.exp`).

use ruff_python_ast::{Expr, Stmt};
use std::collections::HashMap;

#[derive(Default)]
pub struct Imports {
    /// A local name and the full dotted path it stands for.
    names: HashMap<String, String>,
}

impl Imports {
    /// The file's imports, at every level (functions import too).
    pub fn of(body: &[Stmt]) -> Imports {
        let mut names = HashMap::new();
        collect(body, &mut names);
        Imports { names }
    }

    /// Whether the file imports MLX (a file that does not is not MLX code, whatever its names).
    pub fn mlx(&self) -> bool {
        self.names.values().any(|p| p == "mlx" || p.starts_with("mlx."))
    }

    /// The full dotted path of `value.attr` when the root of value is an imported name.
    pub fn attribute_path(&self, a: &ruff_python_ast::ExprAttribute) -> Option<String> {
        Some(format!("{}.{}", self.path(&a.value)?, a.attr.as_str()))
    }

    /// The full dotted path of `a.b.c` when its root is an imported name.
    pub fn path(&self, e: &Expr) -> Option<String> {
        match e {
            Expr::Name(n) => self.names.get(n.id.as_str()).cloned(),
            Expr::Attribute(a) => self.attribute_path(a),
            _ => None,
        }
    }
}

fn collect(body: &[Stmt], names: &mut HashMap<String, String>) {
    for s in body {
        match s {
            Stmt::Import(i) => {
                for a in &i.names {
                    let full = a.name.as_str();
                    match &a.asname {
                        Some(alias) => names.insert(alias.to_string(), full.to_string()),
                        None => {
                            let root = full.split('.').next().unwrap_or(full);
                            names.insert(root.to_string(), root.to_string())
                        }
                    };
                }
            }
            Stmt::ImportFrom(i) if i.level == 0 => {
                let module = i.module.as_ref().map(|m| m.as_str()).unwrap_or("");
                for a in &i.names {
                    let local = a.asname.as_ref().unwrap_or(&a.name).to_string();
                    names.insert(local, format!("{module}.{}", a.name.as_str()));
                }
            }
            Stmt::FunctionDef(f) => collect(&f.body, names),
            Stmt::ClassDef(c) => collect(&c.body, names),
            Stmt::If(i) => {
                collect(&i.body, names);
                for c in &i.elif_else_clauses {
                    collect(&c.body, names);
                }
            }
            Stmt::Try(t) => {
                collect(&t.body, names);
                collect(&t.orelse, names);
            }
            _ => {}
        }
    }
}

/// What a resolved path names in MLX: `mlx.core.fast.rms_norm` is `Core("fast.rms_norm")`.
#[derive(Debug, PartialEq)]
pub enum Api<'a> {
    Core(&'a str),
    Nn(&'a str),
    Math(&'a str),
    Other,
}

pub fn api(path: &str) -> Api<'_> {
    if let Some(p) = path.strip_prefix("mlx.core.") {
        Api::Core(p)
    } else if let Some(p) = path.strip_prefix("mlx.nn.") {
        Api::Nn(p)
    } else if let Some(p) = path.strip_prefix("math.").or_else(|| path.strip_prefix("numpy.")) {
        Api::Math(p)
    } else {
        Api::Other
    }
}
