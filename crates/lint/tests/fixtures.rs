//! Each rule's fixture (`tests/fixtures/CODE_name.py`): the lines marked `expect: CODE` are
//! exactly the findings (so every unmarked near miss must stay quiet), and the messages are
//! snapshot-tested.

use std::collections::BTreeSet;
use std::path::Path;
use superopt_lint::{lint_source, render_text, FileReport, RULES};

/// (line, code) of every `expect: CODE[, CODE]` marker.
fn expected(source: &str) -> BTreeSet<(usize, String)> {
    let mut out = BTreeSet::new();
    for (k, line) in source.lines().enumerate() {
        if let Some((_, codes)) = line.split_once("expect: ") {
            for c in codes.split(',') {
                out.insert((k + 1, c.trim().to_string()));
            }
        }
    }
    out
}

fn fixtures() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|p| p.extension().is_some_and(|x| x == "py"));
    files.sort();
    files
}

#[test]
fn every_rule_has_a_fixture() {
    let names: Vec<String> = fixtures().iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for d in RULES {
        let want = format!("{}_{}.py", d.code, d.name.replace('-', "_"));
        assert!(names.contains(&want), "{} has no fixture {want}", d.code);
    }
}

#[test]
fn fixtures_find_exactly_the_marked_lines() {
    for path in fixtures() {
        let source = std::fs::read_to_string(&path).unwrap();
        let findings = lint_source(&source).unwrap();
        let found: BTreeSet<(usize, String)> =
            findings.iter().map(|f| (f.line, f.rule.doc().code.to_string())).collect();
        assert_eq!(found, expected(&source), "{}", path.display());
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let report = FileReport { path: Path::new(&name).with_extension("py"), findings };
        insta::assert_snapshot!(name, render_text(&[report]));
    }
}

/// Files written by independent authors (`tests/probe/one`, `two` and `three`, each with its
/// author's list of what should and should not be found, EXPECTED.md): the findings are exactly
/// the folder's FINDINGS.txt.
#[test]
fn independent_probe_files_find_what_their_authors_expected() {
    for set in ["one", "two", "three"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probe").join(set);
        let listed = std::fs::read_to_string(dir.join("FINDINGS.txt")).unwrap();
        let want: BTreeSet<String> =
            listed.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(str::to_string).collect();
        let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.retain(|p| p.extension().is_some_and(|x| x == "py"));
        let mut found = BTreeSet::new();
        for path in files {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            for f in lint_source(&std::fs::read_to_string(&path).unwrap()).unwrap() {
                found.insert(format!("{name}:{}: {}", f.line, f.rule.doc().code));
            }
        }
        assert_eq!(found, want, "tests/probe/{set}");
    }
}
