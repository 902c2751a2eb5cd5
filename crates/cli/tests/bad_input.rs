//! Bad harnesses: a one-line cause, a non-zero exit, and nothing written.

mod common;
use common::*;

fn rejects(file: &str, expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fast.py");
    let h = harness(&format!("tests/harnesses/bad/{file}"));
    let o = superopt(&[
        "run",
        h.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--json",
        dir.path().join("run.json").to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{file}: stdout {stdout} stderr {stderr}");
    let line =
        stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("{file}: no error line in {stderr}"));
    assert!(line.contains(expect), "{file}: {line}");
    assert!(!stderr.contains("Traceback"), "{file}: {stderr}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{file}: something was written");
}

#[test]
fn missing_fn() {
    rejects("no_fn.py", "defines no function `fn`");
}

#[test]
fn missing_input_factory() {
    rejects("no_factory.py", "defines no function `input_factory`");
}

#[test]
fn factory_returning_the_wrong_thing() {
    rejects("factory_wrong_return.py", "must return (args, kwargs)");
}

#[test]
fn fn_returning_a_float() {
    rejects("returns_non_array.py", "must return an mx.array");
}

#[test]
fn nondeterministic_fn() {
    rejects("nondeterministic.py", "nondeterministic");
}

#[test]
fn fn_that_varies_beyond_rounding() {
    rejects("varies_beyond_rounding.py", "nondeterministic");
}

#[test]
fn fn_that_raises() {
    rejects("raises.py", "ValueError: boom");
}

#[test]
fn fn_that_raises_at_one_size_says_on_which_arrays() {
    rejects("raises_at_large.py", "fn raised ValueError: [reshape] Cannot reshape array of size 264");
    rejects("raises_at_large.py", "(arrays: [2, 132] mlx.core.float32)");
}

#[test]
fn harness_that_fails_to_import() {
    rejects("import_error.py", "cannot be imported");
}

#[test]
fn harness_with_a_syntax_error() {
    rejects("syntax_error.py", "syntax error at line 2");
}

#[test]
fn harness_that_does_not_exist() {
    let o = superopt(&["run", "/nonexistent/harness.py"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o).1.contains("cannot read the harness"));
}
