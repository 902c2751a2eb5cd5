//! `superopt model` end to end on tiny mlx-lm models with random weights (a dense Qwen3,
//! and a Qwen3-MoE with 4-bit experts), as a new user runs it: the blocks, the patch, and
//! the proof that the patched model decodes as stock does. And the patch itself: a block
//! kind with a winner calls it where it fits, a wrong winner is withdrawn by the proof.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn python() -> String {
    std::env::var("SUPEROPT_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A tiny random model of `kind` (`tests/models/random_model.py`) in `dir`.
fn tiny(kind: &str, dir: &Path) {
    let script = repo().join("tests/models/random_model.py");
    let o = Command::new(python()).arg(script).args([kind, dir.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn model_run(kind: &str) -> (serde_json::Value, String, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(kind);
    tiny(kind, &dir);
    let patch = tmp.path().join("PATCH.py");
    let capsule = tmp.path().join("capsule.json");
    let started = Instant::now();
    let args = [
        "model",
        dir.to_str().unwrap(),
        "-o",
        patch.to_str().unwrap(),
        "--json",
        capsule.to_str().unwrap(),
        "--time-budget",
        "30",
        "--prompt-tokens",
        "32",
        "--new-tokens",
        "24",
    ];
    let o = superopt(&args);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(started.elapsed() < Duration::from_secs(600), "{kind} took {:?}", started.elapsed());
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&capsule).unwrap()).unwrap();
    assert!(patch.exists(), "{stdout}");
    (c, stdout, tmp)
}

fn check_end_to_end(kind: &str, pure_kind: &str) {
    let (c, stdout, tmp) = model_run(kind);
    let blocks = c["blocks"].as_array().unwrap();
    for run in blocks.iter().flat_map(|b| b["runs"].as_array().unwrap()) {
        if let (Some(module), Some(false)) = (run["module"].as_str(), run["cached"].as_bool()) {
            let capsule = tmp.path().join("PATCH_blocks").join(module.replace(".py", ".capsule.json"));
            assert!(capsule.exists(), "each run's capsule beside its module: {}", capsule.display());
        }
    }
    let pure = blocks.iter().find(|b| b["kind"] == pure_kind).unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(pure["runs"].as_array().unwrap().len(), 2, "decode and prefill: {stdout}");
    let attention = blocks.iter().find(|b| b["kind"].as_str().unwrap().ends_with(".Attention")).unwrap();
    assert_eq!(attention["call"], "cached", "{stdout}");
    assert_eq!(attention["runs"].as_array().unwrap().len(), 1, "decode, on mlx-lm's KV cache: {stdout}");
    let forms = c["proof"]["forms"].as_array().unwrap();
    assert_eq!(forms.len(), 3, "{stdout}");
    for f in forms {
        assert!(f["first_difference"].is_null(), "{}: tokens differ from stock's: {stdout}", f["name"]);
        assert!(f["prefill_tokens_per_s"].as_f64().unwrap() > 0.0, "{stdout}");
        let forced = &f["forced"];
        if f["name"] != "stock" {
            // On stock's tokens: as many steps as greedy tokens, the same choices, near logits.
            assert_eq!(forced["steps"].as_u64(), Some(c["proof"]["prompts"].as_u64().unwrap() * 24), "{forced}");
            assert_eq!(forced["argmax_differs"], 0, "{forced}");
            assert!(forced["rel_l2"].as_f64().unwrap() < 1e-3, "{forced}");
        }
    }
    assert!(c["warm_seconds"].as_f64().is_some_and(|s| s > 0.0), "the stock model ran once first: {stdout}");
    assert!(stdout.contains("host time per decode step: stock "), "{stdout}");
    assert!(stdout.contains("| patched |") && stdout.contains("identical"), "{stdout}");
    assert!(stdout.contains(" differ, logits "), "{stdout}");
}

#[test]
fn a_tiny_dense_qwen3_goes_through_end_to_end_and_decodes_as_stock() {
    check_end_to_end("qwen3", "mlx_lm.models.qwen3.MLP");
}

#[test]
fn a_tiny_qwen3_moe_with_4bit_experts_goes_through_end_to_end_and_decodes_as_stock() {
    check_end_to_end("qwen3_moe", "mlx_lm.models.qwen3_moe.Qwen3MoeSparseMoeBlock");
}

#[test]
fn a_model_folder_that_is_not_one_is_one_line_of_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o = superopt(&["model", tmp.path().to_str().unwrap(), "-o", tmp.path().join("p.py").to_str().unwrap()]);
    let (stdout, stderr) = text(&o);
    assert_ne!(o.status.code(), Some(0), "{stdout}");
    assert!(stderr.starts_with("error: cannot load"), "{stderr}");
    assert!(!tmp.path().join("p.py").exists());
}
