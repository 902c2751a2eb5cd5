//! Runs a Python check against the worker's source on real MLX.

use std::io::Write;
use std::process::{Command, Stdio};

/// After a check has run: MLX 0.32.4 now and then aborts in its teardown on a loaded machine
/// ("terminate called without an active exception"), so the check ends without one.
const EXIT: &str = "\nimport os, sys\nsys.stdout.flush()\nos._exit(0)\n";

/// Runs `check` (Python reading the worker's source from stdin) and asserts it prints "ok".
pub fn run_check(check: &str) {
    run_check_source(check, superopt_worker::WORKER_SOURCE);
}

/// Runs `check` with `source` on its stdin and asserts it prints "ok".
pub fn run_check_source(check: &str, source: &str) {
    let python = superopt_worker::find_python(None, &|_| {}).expect("a Python with MLX").path;
    let mut child = Command::new(python)
        .args(["-c", &format!("{check}{EXIT}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(source.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
