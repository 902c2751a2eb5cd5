//! What gets written, and when: wins, no-change endings, `verify`.

mod common;
use common::*;

/// A sigmoid by hand: mx.compile fuses its four passes over memory into one
/// (about 2x on a 2-core CPU, more on a GPU), far beyond timing noise.
const SIGMOID_BY_HAND: &str = r#"
import mlx.core as mx

def fn(x, w):
    z = x * w
    return mx.exp(z) / (1 + mx.exp(z))

def input_factory(size_label, seed):
    n = {"small": 256, "typical": 1024, "large": 4096}[size_label]
    return (mx.random.normal((n, 256), key=mx.random.key(seed)), mx.ones((256,))), {}
"#;

#[test]
fn a_verified_win_is_written_and_verify_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("sig.py");
    std::fs::write(&h, SIGMOID_BY_HAND).unwrap();
    let out = dir.path().join("fast.py");
    let o = superopt(&["run", h.to_str().unwrap(), "-o", out.to_str().unwrap(), "--time-budget", "40"]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("winner: "), "mx.compile fuses this chain on any device: {stdout}");
    let src = std::fs::read_to_string(&out).unwrap();
    assert!(src.contains("def optimized(x, w):") && src.contains("mx.compile"), "{src}");
    let v = superopt(&["verify", h.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(0), "{:?}", text(&v));
    assert!(text(&v).0.contains("accepted"));
}

#[test]
fn verify_rejects_a_wrong_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("sig.py");
    std::fs::write(&h, SIGMOID_BY_HAND).unwrap();
    let wrong = dir.path().join("wrong.py");
    // Off by a factor in the tanh term: a plausible slip.
    std::fs::write(&wrong, "import mlx.core as mx\n\ndef optimized(x, w):\n    return mx.sigmoid(x * w * 1.001)\n")
        .unwrap();
    let v = superopt(&["verify", h.to_str().unwrap(), wrong.to_str().unwrap()]);
    let (stdout, _) = text(&v);
    assert_eq!(v.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAILED") && stdout.contains("rejected"), "{stdout}");
}

#[test]
fn verify_accepts_a_correct_rewrite_with_different_rounding() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("sig.py");
    std::fs::write(&h, SIGMOID_BY_HAND).unwrap();
    let right = dir.path().join("right.py");
    // Rounds differently (a reciprocal, then a product) and keeps NaN/Inf where fn has them.
    let body = "    e = mx.exp(x * w)\n    return e * mx.reciprocal(1 + e)\n";
    std::fs::write(&right, format!("import mlx.core as mx\n\ndef optimized(x, w):\n{body}")).unwrap();
    let v = superopt(&["verify", h.to_str().unwrap(), right.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(0), "{:?}", text(&v));
}

#[test]
fn unsupported_primitive_ends_with_no_change_and_leaves_output_alone() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("fft.py");
    std::fs::write(
        &h,
        "import mlx.core as mx\n\ndef fn(x):\n    return mx.abs(mx.fft.fft(x))\n\ndef input_factory(size_label, seed):\n    return (mx.random.normal((4, 16), key=mx.random.key(seed)),), {}\n",
    )
    .unwrap();
    let out = dir.path().join("fast.py");
    std::fs::write(&out, "# the user's own file\n").unwrap();
    let json = dir.path().join("run.json");
    let o = superopt(&["run", h.to_str().unwrap(), "-o", out.to_str().unwrap(), "--json", json.to_str().unwrap()]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("no change: unsupported primitive FFT"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "# the user's own file\n");
    // The capsule asked for says so too, for scripts that read it.
    let capsule: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(capsule["decision"].as_str().unwrap().starts_with("no change: unsupported primitive FFT"), "{capsule}");
    assert!(capsule["winner"].is_null());
}

#[test]
fn trace_prints_text_json_and_dot() {
    let h = harness("examples/softmax.py");
    for (format, needle) in [("text", "Reduce("), ("json", "\"variants\""), ("dot", "digraph program")] {
        let o = superopt(&["trace", h.to_str().unwrap(), "--format", format, "--size", "all"]);
        assert_eq!(o.status.code(), Some(0));
        assert!(text(&o).0.contains(needle), "{format}: {}", text(&o).0);
    }
}

#[test]
fn a_candidate_that_kills_the_worker_is_rejected_and_the_worker_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("sig.py");
    std::fs::write(&h, SIGMOID_BY_HAND).unwrap();
    let crash = dir.path().join("crash.py");
    let body = "    if x.shape[0] > 256:\n        os._exit(7)\n    e = mx.exp(x * w)\n    return e / (1 + e)\n";
    std::fs::write(&crash, format!("import os\nimport mlx.core as mx\n\ndef optimized(x, w):\n{body}")).unwrap();
    let v = superopt(&["verify", h.to_str().unwrap(), crash.to_str().unwrap()]);
    let (stdout, stderr) = text(&v);
    assert_eq!(v.status.code(), Some(1), "{stdout}\n{stderr}");
    // small passes; typical kills the worker; large runs on the restarted worker and kills it again.
    assert!(stdout.contains("small    passed"), "{stdout}");
    assert!(stdout.contains("typical  FAILED: the worker exited; it was restarted"), "{stdout}");
    assert!(stdout.contains("large    FAILED: the worker exited"), "{stdout}");
}

#[test]
fn a_candidate_that_hangs_is_rejected_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("sig.py");
    std::fs::write(&h, SIGMOID_BY_HAND).unwrap();
    let hang = dir.path().join("hang.py");
    std::fs::write(&hang, "import time\nimport mlx.core as mx\n\ndef optimized(x, w):\n    time.sleep(600)\n    return mx.sigmoid(x * w)\n").unwrap();
    let v = superopt(&["verify", h.to_str().unwrap(), hang.to_str().unwrap(), "--request-timeout", "3"]);
    let (stdout, _) = text(&v);
    assert_eq!(v.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("took longer than 3s"), "{stdout}");
}

#[test]
fn a_function_mlx_cannot_export_ends_with_no_change() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fast.py");
    let h = harness("tests/harnesses/ok/custom_vjp.py");
    let o = superopt(&["run", h.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("no change: mx.export_function cannot trace fn"), "{stdout}");
    assert!(stdout.contains("CustomTransforms"), "{stdout}");
    assert!(!out.exists());
}
