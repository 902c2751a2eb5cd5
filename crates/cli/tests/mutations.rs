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

/// One file's verdict: its name, whether `superopt verify` accepted it, and the line that
/// decided (the first failing check, or "accepted").
type Verdict = (String, bool, String);

/// `superopt verify` of every file of one harness at once (the float64 references computed
/// once); harnesses with real-model sizes take their CPU ones (`SUPEROPT_SIZES=cpu`;
/// `scripts/mutations.sh` runs them at real sizes on a GPU).
fn verify_group(h: &Path, fs: &[PathBuf]) -> Vec<Verdict> {
    let mut args = vec!["verify".to_string(), h.to_string_lossy().into_owned()];
    args.extend(fs.iter().map(|f| f.to_string_lossy().into_owned()));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_superopt"))
        .args(&args)
        .env("SUPEROPT_SIZES", "cpu")
        .output()
        .expect("the superopt binary runs");
    let (stdout, stderr) = text(&o);
    let blocks: Vec<&str> = stdout.split("candidate: ").skip(1).collect();
    assert_eq!(blocks.len(), fs.len(), "one block per candidate of {}:\n{stdout}\n{stderr}", h.display());
    let each = fs.iter().zip(blocks);
    let verdicts: Vec<Verdict> = each
        .map(|(f, block)| {
            let decided = block.lines().find(|l| l.contains("caught by") || l.contains("FAILED"));
            let accepted = block.lines().last() == Some("accepted");
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            (name, accepted, decided.unwrap_or("accepted").to_string())
        })
        .collect();
    let code = if verdicts.iter().all(|v| v.1) { 0 } else { 1 };
    assert_eq!(o.status.code(), Some(code), "exit 1 when any candidate is rejected:\n{stdout}");
    verdicts
}

/// Every file of `dir`, verified harness by harness, two harnesses at a time.
fn verify_all(dir: &str) -> Vec<Verdict> {
    let mut groups: std::collections::BTreeMap<PathBuf, Vec<PathBuf>> = Default::default();
    for f in files(dir) {
        groups.entry(harness_of(&f)).or_default().push(f);
    }
    let (odd, even): (Vec<_>, Vec<_>) = groups.into_iter().enumerate().partition(|(k, _)| k % 2 == 1);
    let other = std::thread::spawn(move || odd.iter().flat_map(|(_, (h, fs))| verify_group(h, fs)).collect::<Vec<_>>());
    let mut out: Vec<_> = even.iter().flat_map(|(_, (h, fs))| verify_group(h, fs)).collect();
    out.extend(other.join().unwrap());
    out.sort();
    out
}

#[test]
fn every_wrong_rewrite_is_rejected_by_a_named_check() {
    let results = verify_all("wrong");
    assert!(results.len() >= 30, "the suite has {} mutants", results.len());
    for (f, accepted, line) in &results {
        println!("{f:<50} {accepted} {line}");
    }
    let escaped: Vec<_> =
        results.iter().filter(|(_, accepted, line)| *accepted || !line.contains("caught by")).collect();
    assert!(escaped.is_empty(), "escaped or crashed: {escaped:#?}");
}

#[test]
fn no_correct_rewrite_is_rejected() {
    let results = verify_all("right");
    assert!(results.len() >= 10, "the suite has {} correct rewrites", results.len());
    let rejected: Vec<_> = results.iter().filter(|(_, accepted, _)| !*accepted).collect();
    assert!(rejected.is_empty(), "falsely rejected: {rejected:#?}");
}
