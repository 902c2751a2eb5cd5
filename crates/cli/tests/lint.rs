//! `superopt lint` as a user and CI run it: `path:line:col: CODE message` lines, exit 1 when
//! something is found and 0 when not, JSON, folders, `# noqa`, a file that does not parse, and
//! mlx-lm's own model files staying quiet.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const SLOW: &str =
    "import mlx.core as mx\n\n\ndef f(x):\n    e = mx.exp(x)\n    return e / e.sum(axis=-1, keepdims=True)\n";
const FINE: &str = "import mlx.core as mx\n\n\ndef f(x):\n    return mx.softmax(x, axis=-1)\n";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn findings_print_as_path_line_col_code_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let slow = write(tmp.path(), "slow.py", SLOW);
    let o = superopt(&["lint", slow.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(out, format!("{}:6:12: SO103 hand-written softmax: mx.softmax(x, axis=-1)\n", slow.display()));
    assert!(err.contains("1 finding(s) in 1 of 1 file(s)"), "{err}");
}

#[test]
fn a_clean_file_exits_0_and_prints_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let fine = write(tmp.path(), "fine.py", FINE);
    let o = superopt(&["lint", fine.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o).0, "");
}

#[test]
fn folders_are_walked_and_json_has_code_location_and_fix() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("pkg/.hidden")).unwrap();
    std::fs::create_dir_all(tmp.path().join("pkg/env/lib")).unwrap();
    write(&tmp.path().join("pkg/env"), "pyvenv.cfg", "home = /usr/bin\n");
    write(&tmp.path().join("pkg/env/lib"), "vendored.py", SLOW);
    std::fs::create_dir_all(tmp.path().join("pkg/tests")).unwrap();
    write(&tmp.path().join("pkg/tests"), "test_softmax.py", SLOW);
    write(&tmp.path().join("pkg"), "test_reference.py", SLOW);
    write(&tmp.path().join("pkg"), "slow.py", SLOW);
    write(&tmp.path().join("pkg"), "fine.py", FINE);
    write(&tmp.path().join("pkg/.hidden"), "skipped.py", SLOW);
    let o = superopt(&["lint", tmp.path().to_str().unwrap(), "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(items[0]["code"], "SO103");
    assert_eq!(items[0]["name"], "hand-softmax");
    assert_eq!(items[0]["location"]["row"], 6);
    assert!(items[0]["fix"].as_str().unwrap().contains("mx.softmax"));
    assert!(items[0]["filename"].as_str().unwrap().ends_with("slow.py"));
}

#[test]
fn noqa_silences_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let all = write(tmp.path(), "all.py", &SLOW.replace("keepdims=True)\n", "keepdims=True)  # noqa\n"));
    let this = write(tmp.path(), "this.py", &SLOW.replace("keepdims=True)\n", "keepdims=True)  # noqa: SO103\n"));
    let other = write(tmp.path(), "other.py", &SLOW.replace("keepdims=True)\n", "keepdims=True)  # noqa: SO101\n"));
    let tight = write(tmp.path(), "tight.py", &SLOW.replace("keepdims=True)\n", "keepdims=True)  #noqa:SO103\n"));
    let upper = write(tmp.path(), "upper.py", &SLOW.replace("keepdims=True)\n", "keepdims=True)  # NOQA\n"));
    for (p, code) in [(all, 0), (this, 0), (other, 1), (tight, 0), (upper, 0)] {
        assert_eq!(superopt(&["lint", p.to_str().unwrap()]).status.code(), Some(code), "{}", p.display());
    }
}

#[test]
fn a_file_that_does_not_parse_is_named_and_the_others_still_linted() {
    let tmp = tempfile::tempdir().unwrap();
    let broken = write(tmp.path(), "broken.py", "def f(x:\n    return x\n");
    let slow = write(tmp.path(), "slow.py", SLOW);
    let o = superopt(&["lint", broken.to_str().unwrap(), slow.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err.lines().any(|l| l.starts_with("error: ") && l.contains("broken.py") && l.contains("cannot parse")),
        "{err}"
    );
    assert!(out.contains("SO103"), "{out}");
    let missing = superopt(&["lint", "/nonexistent/model.py", slow.to_str().unwrap()]);
    let (out, err) = text(&missing);
    assert_eq!(missing.status.code(), Some(2));
    assert!(err.lines().next().unwrap().contains("/nonexistent/model.py: no such file or folder"), "{err}");
    assert!(out.contains("SO103"), "the other file is still linted: {out}");
}

#[test]
fn rules_lists_every_rule_with_what_why_and_fix() {
    let o = superopt(&["lint", "--rules"]);
    let out = text(&o).0;
    assert_eq!(o.status.code(), Some(0));
    for d in superopt_lint::RULES {
        assert!(out.contains(&format!("{} {}", d.code, d.name)), "{}", d.code);
    }
    assert_eq!(out.matches("  fix: ").count(), superopt_lint::RULES.len());
}

/// mlx-lm's llama, qwen3 and qwen3_moe: at most one finding each (the bar; today none).
#[test]
fn mlx_lm_model_files_stay_quiet() {
    let python = std::env::var("SUPEROPT_PYTHON").unwrap_or_else(|_| "python3".into());
    let o = Command::new(python)
        .args(["-c", "import mlx_lm, os; print(os.path.dirname(mlx_lm.__file__))"])
        .output()
        .unwrap();
    assert!(o.status.success(), "mlx-lm is installed by scripts/dev-python.sh");
    let models = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("models");
    for name in ["llama.py", "qwen3.py", "qwen3_moe.py"] {
        let report = superopt_lint::lint_file(&models.join(name)).unwrap();
        assert!(report.findings.len() <= 1, "{name}: {:?}", report.findings);
    }
}

#[test]
fn a_file_that_does_not_import_mlx_is_not_mlx_code() {
    let tmp = tempfile::tempdir().unwrap();
    let torch = write(
        tmp.path(),
        "torch_model.py",
        "import torch\n\n\ndef f(x):\n    return x * x.sigmoid()\n\n\ndef g(xs):\n    return [t.item() for t in xs]\n",
    );
    let o = superopt(&["lint", torch.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).0);
}
