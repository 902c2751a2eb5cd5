//! The mutation suite: deliberately wrong rewrites of real programs must all be
//! rejected, each by a named check; correct rewrites whose rounding differs must
//! all be accepted. Files: tests/mutations/{wrong,right}/*.py, each naming its
//! harness in a `HARNESS = "..."` line.

mod common;
use common::*;
use std::path::{Path, PathBuf};

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/mutations").join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('_'))
        .collect();
    v.sort();
    v
}

fn harness_of(file: &Path) -> PathBuf {
    let text = std::fs::read_to_string(file).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("HARNESS = "))
        .unwrap_or_else(|| panic!("{} names no HARNESS", file.display()));
    repo().join(line.trim_start_matches("HARNESS = ").trim_matches('"'))
}

/// `superopt verify` of one file; harnesses with real-model sizes take their CPU ones
/// (`SUPEROPT_SIZES=cpu`; `scripts/mutations.sh` runs them at real sizes on a GPU).
fn verify_one(f: &Path) -> (String, Option<i32>, String) {
    let h = harness_of(f);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_superopt"))
        .args(["verify", h.to_str().unwrap(), f.to_str().unwrap()])
        .env("SUPEROPT_SIZES", "cpu")
        .output()
        .expect("the superopt binary runs");
    let (stdout, _) = text(&o);
    let line =
        stdout.lines().find(|l| l.contains("caught by") || l.contains("FAILED")).unwrap_or("accepted").to_string();
    (f.file_name().unwrap().to_string_lossy().into_owned(), o.status.code(), line)
}

/// Runs `superopt verify` on each file, two at a time; returns (file, exit code, the line that decided).
fn verify_all(dir: &str) -> Vec<(String, Option<i32>, String)> {
    let (odd, even): (Vec<_>, Vec<_>) = files(dir).into_iter().enumerate().partition(|(k, _)| k % 2 == 1);
    let other = std::thread::spawn(move || odd.iter().map(|(_, f)| verify_one(f)).collect::<Vec<_>>());
    let mut out: Vec<_> = even.iter().map(|(_, f)| verify_one(f)).collect();
    out.extend(other.join().unwrap());
    out.sort();
    out
}

#[test]
fn every_wrong_rewrite_is_rejected_by_a_named_check() {
    let results = verify_all("wrong");
    assert!(results.len() >= 30, "the suite has {} mutants", results.len());
    for (f, code, line) in &results {
        println!("{f:<50} {code:?} {line}");
    }
    let escaped: Vec<_> =
        results.iter().filter(|(_, code, line)| *code != Some(1) || !line.contains("caught by")).collect();
    assert!(escaped.is_empty(), "escaped or crashed: {escaped:#?}");
}

#[test]
fn no_correct_rewrite_is_rejected() {
    let results = verify_all("right");
    assert!(results.len() >= 10, "the suite has {} correct rewrites", results.len());
    let rejected: Vec<_> = results.iter().filter(|(_, code, _)| *code != Some(0)).collect();
    assert!(rejected.is_empty(), "falsely rejected: {rejected:#?}");
}
