//! `superopt suite DIR`: every harness in a folder, superopt against the original
//! and `mx.compile(fn)`, timed side by side in one worker; a table, JSON and a chart.

use crate::cli::{CommonArgs, ObjectiveArg, RunArgs, SuiteArgs};
use crate::pipeline::{optimize, Outcome};
use crate::session::SIZES;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use crate::session::Session;
use superopt_bench::{compare, geomean};
use superopt_verify::{judge, Tolerance};

/// One contender's speedups over the original, per size.
#[derive(Debug, Serialize, Deserialize)]
pub struct Speedups {
    pub sizes: Vec<f64>,
    pub geomean: f64,
}

/// One harness's row.
#[derive(Debug, Serialize, Deserialize)]
pub struct Row {
    pub workload: String,
    /// "ok", "no change: ...", or "failed: ...".
    pub status: String,
    /// The original's median seconds per call, per size.
    pub original: Vec<f64>,
    pub compiled: Option<Speedups>,
    pub superopt: Option<Speedups>,
    /// phew's output, timed like the others when it ran and passed superopt's verification.
    pub phew: Option<Speedups>,
    /// "verified", or why phew has no figures here.
    pub phew_status: String,
    /// The harness's `fast_fn` (the same function through `mx.fast`), where it has one.
    pub fast: Option<Speedups>,
    pub fast_status: String,
    /// The roofline floor per size (seconds), and the fraction of it superopt's result
    /// reaches at the large size.
    pub floor: Vec<f64>,
    pub roofline: Option<f64>,
    /// What superopt handed back: a candidate's name, or "original".
    pub superopt_result: String,
    pub verified: bool,
    pub seconds: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SuiteReport {
    pub device: String,
    pub sizes: String,
    pub phew: String,
    pub rows: Vec<Row>,
    pub geomean_compiled: f64,
    pub geomean_superopt: f64,
    /// Over the workloads where phew's output was verified; `None` where there is none.
    pub geomean_phew: Option<f64>,
}

pub fn suite(a: SuiteArgs) -> Result<ExitCode> {
    if a.cpu_sizes {
        std::env::set_var("SUPEROPT_SIZES", "cpu");
    }
    let mut files: Vec<_> = std::fs::read_dir(&a.dir)
        .with_context(|| format!("cannot read the suite folder {}", a.dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "py") && !p.file_name().unwrap().to_string_lossy().starts_with('_'))
        .filter(|p| a.only.as_ref().is_none_or(|o| p.file_stem().is_some_and(|s| s.to_string_lossy() == *o)))
        .collect();
    files.sort();
    let mut rows = vec![];
    let mut device = String::from("unknown");
    let mut phew = String::from("not importable in the worker's Python (pip install phew-mlx there): skipped");
    if let (true, Some(path)) = (a.resume, &a.json) {
        if let Ok(bytes) = std::fs::read(path) {
            let earlier: SuiteReport = serde_json::from_slice(&bytes).with_context(|| format!("{} is not a suite report to resume", path.display()))?;
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
        phew = phew_seen.unwrap_or(phew);
        let geo = |x: &Option<Speedups>| x.as_ref().map_or("-".into(), |s| format!("{:.2}x", s.geomean));
        eprintln!("suite: {} {} mx.compile {} superopt {}", row.workload, row.status, geo(&row.compiled), geo(&row.superopt));
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

/// The report over `rows`, with each contender's geometric mean.
fn summary(rows: Vec<Row>, device: String, phew: String, cpu_sizes: bool) -> SuiteReport {
    let gm = |pick: fn(&Row) -> Option<&Speedups>| geomean(rows.iter().map(|r| pick(r).map_or(1.0, |s| s.geomean)));
    SuiteReport {
        device,
        sizes: if cpu_sizes { "cpu".into() } else { "full".into() },
        phew,
        geomean_compiled: gm(|r| r.compiled.as_ref()),
        geomean_superopt: gm(|r| r.superopt.as_ref()),
        geomean_phew: rows.iter().any(|r| r.phew.is_some()).then(|| geomean(rows.iter().filter_map(|r| r.phew.as_ref()).map(|s| s.geomean))),
        rows,
    }
}

/// A row with nothing measured yet.
fn empty_row(path: &std::path::Path) -> Row {
    Row {
        workload: path.file_stem().unwrap().to_string_lossy().into_owned(),
        status: String::new(),
        original: vec![],
        compiled: None,
        superopt: None,
        phew: None,
        phew_status: "not run".into(),
        fast: None,
        fast_status: "not run".into(),
        floor: vec![],
        roofline: None,
        superopt_result: "original".into(),
        verified: false,
        seconds: 0.0,
    }
}

/// `workload` in a child superopt (`suite --only`), ended with its worker after `limit`.
fn isolated(path: &std::path::Path, a: &SuiteArgs, limit: Duration) -> (Row, Option<String>, Option<String>) {
    let start = Instant::now();
    let mut row = empty_row(path);
    let failed = |mut row: Row, why: String| {
        row.status = why;
        row.seconds = start.elapsed().as_secs_f64();
        (row, None, None)
    };
    let Ok(dir) = tempfile::tempdir() else { return failed(row, "failed: no temporary folder".into()) };
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
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(row, format!("failed: cannot start superopt: {e}")),
    };
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > limit => {
                end_group(&mut child);
                return failed(row, format!("timed out after {} s (--harness-limit)", limit.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return failed(row, format!("failed: {e}")),
        }
    }
    let report: Option<SuiteReport> = std::fs::read(&json).ok().and_then(|b| serde_json::from_slice(&b).ok());
    match report {
        Some(mut r) if !r.rows.is_empty() => {
            let phew = (!r.phew.starts_with("not importable")).then(|| r.phew.clone());
            row = r.rows.remove(0);
            (row, Some(r.device), phew)
        }
        _ => failed(row, "failed: the harness's process ended without a row".into()),
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

/// Runs superopt on one harness, then times original, mx.compile(fn) and the result.
/// Also returns the device, and what the worker said of phew (version) where it ran.
fn workload(path: &std::path::Path, a: &SuiteArgs) -> (Row, Option<String>, Option<String>) {
    let start = Instant::now();
    let mut row = empty_row(path);
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
    let mut done = match optimize(&args) {
        Ok(Outcome::Done(d)) => d,
        Ok(Outcome::NoChange(why)) => {
            row.status = format!("no change: {why}");
            row.seconds = start.elapsed().as_secs_f64();
            return (row, None, None);
        }
        Err(e) => {
            row.status = format!("failed: {e:#}");
            row.seconds = start.elapsed().as_secs_f64();
            return (row, None, None);
        }
    };
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
    let winner = done.winner.map(|k| done.candidates[k].name.clone());
    row.verified = done.winner.is_some();
    let mut ids = vec!["original".to_string(), "compiled_original".to_string()];
    if let Some(w) = &winner {
        ids.push(w.clone());
        row.superopt_result = w.clone();
    }
    let phew_seen = phew_contender(&mut done.session, &mut row, Duration::from_secs(a.time_budget));
    if row.phew_status == "verified" {
        ids.push("phew".into());
    }
    row.fast_status = fast_contender(&mut done.session);
    if row.fast_status == "verified" {
        ids.push("fast".into());
    }
    row.floor = done.capsule.floors.iter().map(|f| f.seconds).collect();
    let (mut compiled, mut ours, mut theirs, mut fast) = (vec![], vec![], vec![], vec![]);
    for size in SIZES {
        match done.session.time(&ids, size, Duration::from_secs(5)) {
            Ok(t) => {
                row.original.push(superopt_bench::median(&t["original"]));
                compiled.push(compare(&t["original"], &t["compiled_original"]).speedup);
                ours.push(winner.as_ref().map_or(1.0, |w| compare(&t["original"], &t[w]).speedup));
                if let Some(p) = t.get("phew") {
                    theirs.push(compare(&t["original"], p).speedup);
                }
                if let Some(f) = t.get("fast") {
                    fast.push(compare(&t["original"], f).speedup);
                }
            }
            Err(e) => {
                row.status = format!("failed timing at {size}: {e}");
                row.seconds = start.elapsed().as_secs_f64();
                return (row, device, phew_seen);
            }
        }
    }
    let speedups = |v: Vec<f64>| Speedups { geomean: geomean(v.iter().copied()), sizes: v };
    row.compiled = Some(speedups(compiled));
    row.superopt = Some(speedups(ours.clone()));
    row.phew = (!theirs.is_empty()).then(|| speedups(theirs));
    row.fast = (!fast.is_empty()).then(|| speedups(fast));
    if let (Some(floor), Some(orig), Some(sp)) = (row.floor.last(), row.original.last(), ours.last()) {
        row.roofline = Some(floor * sp / orig);
    }
    row.status = "ok".into();
    row.seconds = start.elapsed().as_secs_f64();
    (row, device, phew_seen)
}

/// Runs phew on the harness in the worker (when importable) and verifies its output with
/// superopt's own checks at every size; sets `row.phew_status`. Returns "phew-mlx VERSION".
/// phew gets the time superopt gets (`limit`, the suite's --time-budget).
fn phew_contender(s: &mut Session, row: &mut Row, limit: Duration) -> Option<String> {
    let dir = tempfile::tempdir().ok()?;
    let path = dir.path().join("phew_out.py");
    let reply = match s.worker.cmd("phew", serde_json::json!({"path": path.to_string_lossy()}), limit) {
        Ok(r) => r,
        Err(e) => {
            row.phew_status = format!("failed: {e}");
            return None;
        }
    };
    if reply["available"] != true {
        row.phew_status = "not importable".into();
        return None;
    }
    let seen = Some(format!("phew-mlx {}", reply["version"].as_str().unwrap_or("?")));
    if let Some(e) = reply["error"].as_str() {
        row.phew_status = e.to_string();
        return seen;
    }
    if let Err(e) = s.register("phew", &path, "optimized") {
        row.phew_status = format!("no usable output: {e}");
        return seen;
    }
    row.phew_status = match verify_contender(s, "phew") {
        Ok(()) => "verified".into(),
        Err(why) => why,
    };
    seen
}

/// The harness's `fast_fn`, loaded and verified as a contender: "verified", or why not.
fn fast_contender(s: &mut Session) -> String {
    let harness = s.harness.clone();
    if s.register("fast", &harness, "fast_fn").is_err() {
        return "none (the harness defines no fast_fn)".into();
    }
    match verify_contender(s, "fast") {
        Ok(()) => "verified".into(),
        Err(why) => why,
    }
}

/// superopt's checks, at every size, of a contender the worker has loaded as `id`.
fn verify_contender(s: &mut Session, id: &str) -> Result<(), String> {
    let seeds: Vec<u64> = (0..5).collect();
    for size in SIZES {
        match s.verify(id, size, &seeds, Tolerance::Relative, None).map(|f| judge(&f, Tolerance::Relative)) {
            Ok(v) if v.accepted => {}
            Ok(v) => return Err(format!("not verified at {size}: {}", v.reason.unwrap_or_default())),
            Err(e) => return Err(format!("not verified at {size}: {e}")),
        }
    }
    Ok(())
}

fn markdown(r: &SuiteReport) -> String {
    let mut s = String::new();
    writeln!(s, "\nsuperopt suite · {} · sizes: {} · phew: {}\n", r.device, r.sizes, r.phew).unwrap();
    writeln!(s, "| workload | original (small / typical / large) | mx.compile speedup | mx.fast speedup | phew speedup | superopt speedup | superopt result | roofline at large | time |").unwrap();
    writeln!(s, "|---|---|---|---|---|---|---|---|---|").unwrap();
    let fmt = |x: &Option<Speedups>| {
        x.as_ref().map_or("-".into(), |s| {
            format!("{} (geo {:.2}x)", s.sizes.iter().map(|v| format!("{v:.2}x")).collect::<Vec<_>>().join(" / "), s.geomean)
        })
    };
    for row in &r.rows {
        if row.status != "ok" {
            writeln!(s, "| {} | {} | - | - | - | - | original | - | {:.0}s |", row.workload, cell(&row.status), row.seconds).unwrap();
            continue;
        }
        let orig = row.original.iter().map(|t| superopt_report::format_seconds(*t)).collect::<Vec<_>>().join(" / ");
        let result = if row.verified { format!("{} (verified)", row.superopt_result) } else { "original (no verified win)".into() };
        let phew = if row.phew.is_some() { fmt(&row.phew) } else { cell(&row.phew_status) };
        let fast = if row.fast.is_some() { fmt(&row.fast) } else if row.fast_status.starts_with("none") { "-".into() } else { cell(&row.fast_status) };
        let roof = row.roofline.map_or("-".into(), |f| format!("{:.0}%", f * 100.0));
        writeln!(s, "| {} | {orig} | {} | {fast} | {phew} | {} | {result} | {roof} | {:.0}s |", row.workload, fmt(&row.compiled), fmt(&row.superopt), row.seconds).unwrap();
    }
    let phew = r.geomean_phew.map_or("-".into(), |g| format!("{g:.2}x (verified rows)"));
    writeln!(s, "| **geomean** | | {:.2}x | | {phew} | {:.2}x | | | |", r.geomean_compiled, r.geomean_superopt).unwrap();
    s
}

/// One line of at most 100 characters for a table cell (the JSON keeps the whole text).
fn cell(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "/");
    match line.char_indices().nth(100) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// A bar chart of the geometric-mean speedup per workload, one bar per contender.
fn plot(r: &SuiteReport, path: &std::path::Path) -> Result<()> {
    use plotters::prelude::*;
    if path.extension().is_none_or(|e| e != "svg") {
        anyhow::bail!("--plot writes SVG; name the file *.svg");
    }
    let n = r.rows.len().max(1);
    let top = r.rows.iter().flat_map(|row| [&row.compiled, &row.superopt, &row.phew]).flatten().map(|s| s.geomean).fold(1.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, (160 + 90 * n as u32, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("speedup over the original ({})", r.device), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..n as f64, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| r.rows.get(x.floor() as usize).map_or(String::new(), |row| row.workload.clone()))
        .y_desc("geomean speedup (x)")
        .draw()?;
    let bars = |pick: fn(&Row) -> Option<&Speedups>, offset: f64, color: RGBColor| {
        r.rows.iter().enumerate().map(move |(k, row)| {
            let v = pick(row).map_or(0.0, |s| s.geomean);
            Rectangle::new([(k as f64 + offset, 0.0), (k as f64 + offset + 0.26, v)], color.filled())
        })
    };
    chart.draw_series(bars(|row| row.compiled.as_ref(), 0.12, RGBColor(150, 150, 150)))?.label("mx.compile").legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], RGBColor(150, 150, 150).filled()));
    chart.draw_series(bars(|row| row.phew.as_ref(), 0.4, RGBColor(230, 150, 40)))?.label("phew").legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], RGBColor(230, 150, 40).filled()));
    chart.draw_series(bars(|row| row.superopt.as_ref(), 0.68, RGBColor(40, 110, 200)))?.label("superopt").legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], RGBColor(40, 110, 200).filled()));
    chart.draw_series(std::iter::once(PathElement::new(vec![(0.0, 1.0), (n as f64, 1.0)], BLACK)))?;
    chart.configure_series_labels().background_style(WHITE).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
