//! `superopt lint`: the slow MLX patterns in Python source, found without running it, each with
//! its fix. Python is parsed with ruff's parser (a typed AST); expressions become [`term`]s with
//! the spelling taken out and names inlined, so `x / mx.sqrt(v)` over two statements and
//! `x * mx.rsqrt(v)` match one rule. The rules are listed in [`registry::RULES`].
//!
//! ```
//! let src = "import mlx.core as mx\n\ndef f(x):\n    return x * mx.sigmoid(x)\n";
//! let found = superopt_lint::lint_source(src).unwrap();
//! assert_eq!(found[0].rule.doc().code, "SO104");
//! assert_eq!((found[0].line, found[0].column), (4, 12));
//! ```

mod check;
mod imports;
mod lower;
pub mod registry;
pub mod rules;
pub mod term;

pub use registry::{Rule, RULES};

use anyhow::{Context, Result};
use ruff_source_file::LineIndex;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One place a rule matched.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub rule: Rule,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Where and why a source does not parse.
#[derive(Debug)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: cannot parse: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for SyntaxError {}

/// Every finding in one source, in source order.
pub fn lint_source(source: &str) -> Result<Vec<Finding>, SyntaxError> {
    // deep expressions recurse deep in the parser and here: a roomy stack of our own
    std::thread::scope(|s| {
        let worker = std::thread::Builder::new().stack_size(256 << 20).spawn_scoped(s, || lint(source));
        worker.expect("a thread to lint in").join().expect("linting does not panic")
    })
}

fn lint(source: &str) -> Result<Vec<Finding>, SyntaxError> {
    let index = LineIndex::from_source_text(source);
    let at = |offset| {
        let lc = index.line_column(offset, source);
        (lc.line.get(), lc.column.get())
    };
    let parsed = ruff_python_parser::parse_module(source).map_err(|e| {
        let (line, column) = at(e.location.start());
        SyntaxError { line, column, message: e.error.to_string() }
    })?;
    let raw = check::module(source, &parsed.syntax().body);
    let mut found: Vec<Finding> = raw
        .into_iter()
        .filter(|(rule, range, _)| {
            let line = &source[index.line_range(index.line_index(range.start()), source)];
            !suppressed(line, *rule)
        })
        .map(|(rule, range, message)| {
            let (line, column) = at(range.start());
            Finding { rule, line, column, message }
        })
        .collect();
    // one finding per rule and line (the two halves of a rotation are one rotary embedding)
    found.sort_by_key(|f| (f.line, f.rule, f.column));
    found.dedup_by_key(|f| (f.line, f.rule));
    found.sort_by_key(|f| (f.line, f.column, f.rule));
    Ok(found)
}

/// `# noqa` on the line (`// noqa` in a kernel's source) silences every rule there;
/// `# noqa: SO101, SO103` those rules.
fn suppressed(line: &str, rule: Rule) -> bool {
    let comment = line.find('#').or_else(|| line.find("//")).map(|i| line[i..].to_ascii_lowercase());
    let Some((_, after)) = comment.as_deref().and_then(|c| c.split_once("noqa")) else { return false };
    match after.trim_start().strip_prefix(':') {
        None => true,
        Some(codes) => codes.split([',', ' ']).any(|c| c.trim().eq_ignore_ascii_case(rule.doc().code)),
    }
}

/// The findings of one file.
pub struct FileReport {
    pub path: PathBuf,
    pub findings: Vec<Finding>,
}

/// The Python files under `paths` (files as given; folders walked, skipping hidden folders,
/// virtualenvs, site-packages, build folders and tests), in a stable order; and the paths that do
/// not exist.
pub fn python_files(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (mut out, mut missing) = (Vec::new(), Vec::new());
    for p in paths {
        if p.is_file() {
            out.push(p.clone());
            continue;
        }
        if !p.is_dir() {
            missing.push(p.clone());
            continue;
        }
        let skip = |e: &walkdir::DirEntry| {
            let name = e.file_name().to_string_lossy();
            let special = matches!(name.as_ref(), "__pycache__" | "node_modules" | "target" | "site-packages");
            let venv = e.file_type().is_dir() && e.path().join("pyvenv.cfg").exists();
            e.depth() > 0 && (name.starts_with('.') || special || venv || is_test(e))
        };
        for e in walkdir::WalkDir::new(p).sort_by_file_name().into_iter().filter_entry(|e| !skip(e)) {
            let e = e.with_context(|| format!("reading {}", p.display()))?;
            if e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "py") {
                out.push(e.into_path());
            }
        }
    }
    Ok((out, missing))
}

/// Tests (a `tests` folder, `test_*.py`, `*_test.py`, `conftest.py`): in a folder walk they are
/// skipped, since reference implementations and assertion loops are slow on purpose there. Named
/// on the command line, they are linted.
fn is_test(e: &walkdir::DirEntry) -> bool {
    let name = e.file_name().to_string_lossy();
    if e.file_type().is_dir() {
        return matches!(name.as_ref(), "tests" | "test");
    }
    name.starts_with("test_") || name.ends_with("_test.py") || name == "conftest.py"
}

/// Lints one file; the error names the file.
pub fn lint_file(path: &Path) -> Result<FileReport> {
    let source = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let findings = lint_source(&source).map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))?;
    Ok(FileReport { path: path.to_path_buf(), findings })
}

/// `path:line:col: CODE message`, one line per finding.
pub fn render_text(reports: &[FileReport]) -> String {
    let mut out = String::new();
    for r in reports {
        for f in &r.findings {
            let code = f.rule.doc().code;
            out.push_str(&format!("{}:{}:{}: {code} {}\n", r.path.display(), f.line, f.column, f.message));
        }
    }
    out
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    code: &'a str,
    name: &'a str,
    message: &'a str,
    fix: &'a str,
    filename: String,
    location: JsonLocation,
}

#[derive(Serialize)]
struct JsonLocation {
    row: usize,
    column: usize,
}

/// The findings as a JSON array (ruff's field names: code, message, filename, location).
pub fn render_json(reports: &[FileReport]) -> String {
    let items: Vec<JsonFinding> = reports
        .iter()
        .flat_map(|r| {
            r.findings.iter().map(|f| {
                let doc = f.rule.doc();
                JsonFinding {
                    code: doc.code,
                    name: doc.name,
                    message: &f.message,
                    fix: doc.fix,
                    filename: r.path.display().to_string(),
                    location: JsonLocation { row: f.line, column: f.column },
                }
            })
        })
        .collect();
    serde_json::to_string_pretty(&items).expect("findings serialize")
}

/// The rule table as text: code, name, and what, why and the fix of each.
pub fn render_rules() -> String {
    let mut out = String::new();
    for d in RULES {
        out.push_str(&format!("{} {}\n  what: {}\n  why:  {}\n  fix:  {}\n", d.code, d.name, d.what, d.why, d.fix));
    }
    out
}
