//! `superopt suite DIR`: every harness in a folder, superopt against the original,
//! `mx.compile(fn)`, the harness's `fast_fn` and phew, timed side by side in one worker;
//! the table and chart are `superopt_report::suite`'s.

use crate::cli::{CommonArgs, ObjectiveArg, RunArgs, SuiteArgs};
use crate::run::{config, optimize_with_progress};
use anyhow::{Context, Result};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use superopt_bench::{compare, Size};
use superopt_report::suite::{markdown, plot, summary, ContenderStatus, Row, RowStatus, Speedups, SuiteReport};
use superopt_run::{Outcome, Sampling, Session};
use superopt_verify::{judge, Tolerance};
use superopt_worker::protocol::{Phew, ProgramId};

pub fn suite(a: SuiteArgs) -> Result<ExitCode> {
    if a.cpu_sizes {
        std::env::set_var("SUPEROPT_SIZES", "cpu");
    }
    let mut files: Vec<_> = std::fs::read_dir(&a.dir)
        .with_context(|| format!("cannot read the suite folder {}", a.dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "py") && !p.file_name().unwrap().to_string_lossy().starts_with('_')
        })
        .filter(|p| a.only.as_ref().is_none_or(|o| p.file_stem().is_some_and(|s| s.to_string_lossy() == *o)))
        .collect();
    files.sort();
    let mut rows = vec![];
    let mut device = String::from("unknown");
    let mut phew: Option<String> = None;
    if let (true, Some(path)) = (a.resume, &a.json) {
        if let Ok(bytes) = std::fs::read(path) {
            let earlier: SuiteReport = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a suite report to resume", path.display()))?;
            (device, phew, rows) = (earlier.device, earlier.phew, earlier.rows);
        }
    }
    let started = Instant::now();
    let mut left = 0;
    for f in &files {
        let name = f.file_stem().unwrap().to_string_lossy();
        if rows.iter().any(|r| r.workload == name) {
            continue;
        }
        if a.stop_after.is_some_and(|s| started.elapsed().as_secs() >= s) {
            left += 1;
            continue;
        }
        eprintln!("suite: {}", f.display());
        let (row, dev, phew_seen) = match a.harness_limit {
            Some(limit) => isolated(f, &a, Duration::from_secs(limit)),
            None => workload(f, &a),
        };
        device = dev.unwrap_or(device);
        phew = phew_seen.or(phew);
        let geo = |x: &Option<Speedups>| x.as_ref().map_or("-".into(), |s| format!("{:.2}x", s.geomean));
        let (compiled, ours) = (geo(&row.compiled), geo(&row.superopt));
        eprintln!("suite: {} {} mx.compile {compiled} superopt {ours}", row.workload, row.status);
        rows.push(row);
        if let Some(path) = &a.json {
            // Written after every harness, so that a run cut short keeps what it did.
            let so_far = summary(std::mem::take(&mut rows), device.clone(), phew.clone(), a.cpu_sizes);
            std::fs::write(path, serde_json::to_string_pretty(&so_far)?)?;
            rows = so_far.rows;
        }
    }
    let report = summary(rows, device, phew, a.cpu_sizes);
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    print!("{}", markdown(&report));
    if left > 0 {
        println!("\n{left} harnesses not run yet (--stop-after); run again with --resume to go on");
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    if let Some(path) = &a.plot {
        plot(&report, path)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `workload` in a child superopt (`suite --only`), ended with its worker after `limit`.
fn isolated(path: &std::path::Path, a: &SuiteArgs, limit: Duration) -> (Row, Option<String>, Option<String>) {
    let start = Instant::now();
    let mut row = Row::empty(&workload_name(path));
    let failed = |mut row: Row, status: RowStatus| {
        row.status = status;
        row.seconds = start.elapsed().as_secs_f64();
        (row, None, None)
    };
    let Ok(dir) = tempfile::tempdir() else { return failed(row, RowStatus::Failed("no temporary folder".into())) };
    let json = dir.path().join("row.json");
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap_or_else(|_| "superopt".into()));
    cmd.arg("suite").arg(path.parent().unwrap_or(std::path::Path::new("."))).args(["--only", &row.workload]);
    cmd.arg("--json").arg(&json).args(["--time-budget", &a.time_budget.to_string()]);
    if a.cpu_sizes {
        cmd.arg("--cpu-sizes");
    }
    if let Some(p) = &a.python {
        cmd.arg("--python").arg(p);
    }
    if let Some(d) = &a.capsules {
        cmd.arg("--capsules").arg(d);
    }
    cmd.stdout(std::process::Stdio::null());
    // The child's temporary folders (its references, its candidates) go inside `dir`, which
    // goes when this returns: a child ended at its limit cannot remove them itself.
    let tmp = dir.path().join("tmp");
    if std::fs::create_dir(&tmp).is_ok() {
        cmd.env("TMPDIR", &tmp);
    }
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(row, RowStatus::Failed(format!("cannot start superopt: {e}"))),
    };
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > limit => {
                end_group(&mut child);
                return failed(row, RowStatus::TimedOut(limit.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return failed(row, RowStatus::Failed(e.to_string())),
        }
    }
    let report: Option<SuiteReport> = std::fs::read(&json).ok().and_then(|b| serde_json::from_slice(&b).ok());
    match report {
        Some(mut r) if !r.rows.is_empty() => {
            row = r.rows.remove(0);
            (row, Some(r.device), r.phew)
        }
        _ => failed(row, RowStatus::Failed("the harness's process ended without a row".into())),
    }
}

/// Ends the child and its worker: they share a process group (its id is the child's).
fn end_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    if let Ok(pgid) = i32::try_from(child.id()) {
        if pgid > 1 {
            // SAFETY: kill(2) with a negative id signals that process group only.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn workload_name(path: &std::path::Path) -> String {
    path.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned())
}

/// Runs superopt on one harness, then times original, mx.compile(fn) and the result.
/// Also returns the device, and what the worker said of phew (version) where it ran.
fn workload(path: &std::path::Path, a: &SuiteArgs) -> (Row, Option<String>, Option<String>) {
    let start = Instant::now();
    let mut row = Row::empty(&workload_name(path));
    let args = RunArgs {
        common: CommonArgs { harness: path.to_path_buf(), python: a.python.clone(), request_timeout: 120 },
        output: None,
        json: None,
        diff: false,
        objective: ObjectiveArg::All,
        tolerance: "relative".into(),
        time_budget: a.time_budget,
        seeds: 5,
    };
    let outcome = config(&args).and_then(|c| optimize_with_progress(&c));
    let mut done = match outcome {
        Ok(Outcome::Done(d)) => d,
        Ok(Outcome::NoChange(why)) => {
            row.status = RowStatus::NoChange(why);
            row.seconds = start.elapsed().as_secs_f64();
            return (row, None, None);
        }
        Err(e) => {
            row.status = RowStatus::Failed(format!("{e:#}"));
            row.seconds = start.elapsed().as_secs_f64();
            return (row, None, None);
        }
    };
    done.finish();
    if let Some(dir) = &a.capsules {
        let written = std::fs::create_dir_all(dir).and_then(|_| {
            let text = serde_json::to_string_pretty(&done.capsule).unwrap_or_default();
            std::fs::write(dir.join(format!("{}.json", row.workload)), text)
        });
        if let Err(e) = written {
            eprintln!("could not write {}'s capsule into {}: {e}", row.workload, dir.display());
        }
    }
    let device = Some(done.session.hello.device.clone());
    let winner = done.winner.map(|k| ProgramId::Candidate(done.candidates[k].label()));
    row.verified = done.winner.is_some();
    let mut ids = vec![ProgramId::Original, ProgramId::CompiledOriginal];
    if let Some(w) = &winner {
        ids.push(w.clone());
        row.superopt_result = w.to_string();
    }
    let phew_seen = phew_contender(&mut done.session, &mut row, Duration::from_secs(a.time_budget));
    if row.phew_status == ContenderStatus::Verified {
        ids.push(ProgramId::Phew);
    }
    row.fast_status = fast_contender(&mut done.session);
    if row.fast_status == ContenderStatus::Verified {
        ids.push(ProgramId::Fast);
    }
    row.floor = done.capsule.floors.iter().map(|f| f.seconds).collect();
    let (mut compiled, mut ours, mut theirs, mut fast) = (vec![], vec![], vec![], vec![]);
    for size in Size::ALL {
        match done.session.time(&ids, size, Duration::from_secs(5), Sampling::Steady) {
            Ok(t) => {
                let original = &t[&ProgramId::Original];
                row.original.push(superopt_bench::median(original));
                compiled.push(compare(original, &t[&ProgramId::CompiledOriginal]).speedup);
                ours.push(winner.as_ref().map_or(1.0, |w| compare(original, &t[w]).speedup));
                if let Some(p) = t.get(&ProgramId::Phew) {
                    theirs.push(compare(original, p).speedup);
                }
                if let Some(f) = t.get(&ProgramId::Fast) {
                    fast.push(compare(original, f).speedup);
                }
            }
            Err(e) => {
                row.status = RowStatus::Failed(format!("timing at {size}: {e}"));
                row.seconds = start.elapsed().as_secs_f64();
                return (row, device, phew_seen);
            }
        }
    }
    row.compiled = Some(Speedups::of(compiled));
    row.superopt = Some(Speedups::of(ours.clone()));
    row.phew = (!theirs.is_empty()).then(|| Speedups::of(theirs));
    row.fast = (!fast.is_empty()).then(|| Speedups::of(fast));
    if let (Some(floor), Some(orig), Some(sp)) = (row.floor.last(), row.original.last(), ours.last()) {
        row.roofline = Some(floor * sp / orig);
    }
    row.status = RowStatus::Ok;
    row.seconds = start.elapsed().as_secs_f64();
    (row, device, phew_seen)
}

/// Runs phew on the harness in the worker (when importable) and verifies its output with
/// superopt's own checks at every size; sets `row.phew_status`. Returns "phew-mlx VERSION".
/// phew gets the time superopt gets (`limit`, the suite's --time-budget).
fn phew_contender(s: &mut Session, row: &mut Row, limit: Duration) -> Option<String> {
    let dir = tempfile::tempdir().ok()?;
    let path = dir.path().join("phew_out.py");
    let reply = match s.worker.call(&Phew { path: path.to_string_lossy().into_owned() }, limit) {
        Ok(r) => r,
        Err(e) => {
            row.phew_status = ContenderStatus::Lost(format!("failed: {e}"));
            return None;
        }
    };
    if !reply.available {
        row.phew_status = ContenderStatus::NotImportable;
        return None;
    }
    let seen = Some(format!("phew-mlx {}", reply.version.as_deref().unwrap_or("?")));
    if let Some(e) = reply.error {
        row.phew_status = ContenderStatus::Lost(e);
        return seen;
    }
    if let Err(e) = s.register(ProgramId::Phew, &path, "optimized") {
        row.phew_status = ContenderStatus::Lost(format!("no usable output: {e}"));
        return seen;
    }
    row.phew_status = verify_contender(s, &ProgramId::Phew);
    seen
}

/// The harness's `fast_fn`, loaded and verified as a contender.
fn fast_contender(s: &mut Session) -> ContenderStatus {
    let harness = s.harness.clone();
    if s.register(ProgramId::Fast, &harness, "fast_fn").is_err() {
        return ContenderStatus::Absent;
    }
    verify_contender(s, &ProgramId::Fast)
}

/// superopt's checks, at every size, of a contender the worker has loaded as `id`.
fn verify_contender(s: &mut Session, id: &ProgramId) -> ContenderStatus {
    let seeds: Vec<u64> = (0..5).collect();
    for size in Size::ALL {
        match s.verify(id, size, &seeds, Tolerance::Relative, None).map(|f| judge(&f, Tolerance::Relative)) {
            Ok(v) if v.accepted => {}
            Ok(v) => return ContenderStatus::Lost(format!("not verified at {size}: {}", v.reason.unwrap_or_default())),
            Err(e) => return ContenderStatus::Lost(format!("not verified at {size}: {e}")),
        }
    }
    ContenderStatus::Verified
}
