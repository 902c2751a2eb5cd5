//! The shipped suite at CPU sizes with a small budget: a smoke test of `superopt suite`
//! (no timing assertions): every workload gets a row, none fails, JSON, chart and each
//! harness's capsule are written.

mod common;
use common::*;

#[test]
fn suite_runs_every_workload_and_writes_json_and_chart() {
    let dir = tempfile::tempdir().unwrap();
    let (json, svg, capsules) =
        (dir.path().join("suite.json"), dir.path().join("suite.svg"), dir.path().join("capsules"));
    let suite = repo().join("suite");
    let o = superopt(&[
        "suite",
        suite.to_str().unwrap(),
        "--cpu-sizes",
        "--time-budget",
        "8",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
        "--capsules",
        capsules.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let harnesses = std::fs::read_dir(&suite).unwrap().filter(|e| {
        let name = e.as_ref().unwrap().file_name().to_string_lossy().into_owned();
        name.ends_with(".py") && !name.starts_with('_')
    });
    assert_eq!(rows.len(), harnesses.count());
    for r in rows {
        let status = r["status"].as_str().unwrap();
        assert!(!status.starts_with("failed"), "{}: {status}", r["workload"]);
        assert!(stdout.contains(r["workload"].as_str().unwrap()));
        if status == "ok" {
            let capsule = capsules.join(format!("{}.json", r["workload"].as_str().unwrap()));
            let c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&capsule).unwrap()).unwrap();
            assert_eq!(c["candidates"][0]["name"], "as-traced");
        }
    }
    assert!(stdout.contains("| **geomean** |"), "{stdout}");
    // phew is a contender only where it is importable; otherwise every row says so.
    assert!(stdout.contains("phew speedup"), "{stdout}");
    if report["phew"].as_str().unwrap().contains("skipped") {
        assert!(
            rows.iter().filter(|r| r["status"] == "ok").all(|r| r["phew_status"] == "not importable"),
            "{report:#}"
        );
    }
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
}

#[test]
fn a_harness_past_its_limit_is_a_timed_out_row_and_resume_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("kernels.json");
    let suite = repo().join("suite/kernels");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "suite",
            suite.to_str().unwrap(),
            "--cpu-sizes",
            "--json",
            json.to_str().unwrap(),
            "--resume",
            "--stop-after",
            "1",
        ];
        args.extend_from_slice(extra);
        // Its own temporary folder: the child ended at its limit must leave nothing there.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_superopt")).args(&args).env("TMPDIR", &tmp).output();
        let o = o.expect("the superopt binary runs");
        assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().path()).collect();
        assert!(left.is_empty(), "left in the temporary folder: {left:?}");
        let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        (report, text(&o).0)
    };
    let (report, stdout) = run(&["--harness-limit", "1"]);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{report:#}");
    assert!(rows[0]["status"].as_str().unwrap().starts_with("timed out after 1 s"), "{report:#}");
    assert!(stdout.contains("timed out") && stdout.contains("run again with --resume"), "{stdout}");
    // The next sitting keeps that row and runs the next harness.
    let (report, _) = run(&["--harness-limit", "1"]);
    assert_eq!(report["rows"].as_array().unwrap().len(), 2, "{report:#}");
}

/// A contender that kills the worker (here `fast_fn`) after superopt's run: the restarted
/// worker reloads the staged candidates, so the row is still timed.
#[test]
fn a_contender_that_kills_the_worker_leaves_the_row_timed() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("suite.json");
    let suite = repo().join("tests/harnesses/suite_restart");
    let o = superopt(&["suite", suite.to_str().unwrap(), "--time-budget", "8", "--json", json.to_str().unwrap()]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let row = &report["rows"][0];
    assert_eq!(row["status"], "ok", "{row:#}");
    assert!(row["fast_status"].as_str().unwrap().contains("restarted"), "{row:#}");
    assert_eq!(row["original"].as_array().unwrap().len(), 3, "{row:#}");
}
