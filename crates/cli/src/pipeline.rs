//! `superopt run`: trace -> align -> candidates -> emit -> verify -> bench -> decide -> report.

use crate::cli::{ObjectiveArg, RunArgs};
use crate::session::{harness_fault, Session, SIZES};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use superopt_bench::{compare, geomean, is_win, Objective};
use superopt_emit::{emit, ModuleInfo};
use superopt_report::roofline::{self as floors, Ceilings};
use superopt_report::{CandidateReport, Capsule, SizeReport, Stage};
use superopt_search::egraph::cost::Device;
use superopt_search::{as_traced, default_strategies, modelled_cost, Candidate, Compile};
use superopt_verify::field::FieldReport;
use superopt_verify::{judge, Tolerance};
use superopt_worker::WorkerError;

struct Stages {
    last: Instant,
    done: Vec<Stage>,
}

impl Stages {
    fn mark(&mut self, name: &str) {
        self.done.push(Stage { name: name.into(), seconds: self.last.elapsed().as_secs_f64() });
        self.last = Instant::now();
    }
}

fn spinner() -> ProgressBar {
    let p = ProgressBar::new_spinner();
    p.set_style(ProgressStyle::with_template("{spinner} {elapsed:>3} {msg}").unwrap());
    p.enable_steady_tick(Duration::from_millis(120));
    p
}

/// What a run ends with.
pub enum Outcome {
    /// The original stays as it is, for this reason (an unsupported primitive...).
    NoChange(String),
    Done(Box<Done>),
}

/// A finished run: the capsule, the candidates, and the worker that ran them.
pub struct Done {
    pub capsule: Capsule,
    pub candidates: Vec<Candidate>,
    pub winner: Option<usize>,
    pub session: Session,
    pub harness_text: String,
    stages: Stages,
    /// The staged candidates' modules: a worker restarted later reloads them from here.
    _workdir: tempfile::TempDir,
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let mut done = match optimize(&args)? {
        Outcome::NoChange(why) => {
            println!("no change: {why}; the original is unchanged");
            return Ok(ExitCode::SUCCESS);
        }
        Outcome::Done(d) => d,
    };
    let Done { capsule, candidates, winner, session, harness_text, stages, .. } = &mut *done;
    if let (Some(k), Some(out)) = (*winner, &args.output) {
        let notes = module_notes(&capsule.candidates[k]);
        write_module(session, &candidates[k], out, notes)?;
        capsule.output = Some(out.display().to_string());
    }
    if let (Some(k), true) = (*winner, args.diff) {
        let info = ModuleInfo { harness: &session.harness.to_string_lossy(), constants_file: "optimized.safetensors", notes: vec![] };
        let e = emit(&candidates[k], &info)?;
        println!("{}", superopt_report::diff(harness_text, &e.source, &capsule.harness, "optimized.py"));
    }
    stages.mark("decide");
    capsule.stages = std::mem::take(&mut stages.done);
    print!("{}", superopt_report::table(capsule));
    if let Some(path) = &args.json {
        write_atomic(path, serde_json::to_string_pretty(capsule)?.as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `superopt explain`: the run's decision, then the rewrites behind the winner and
/// behind each other e-graph candidate, with why it did not win.
pub fn explain(args: RunArgs) -> Result<ExitCode> {
    let done = match optimize(&args)? {
        Outcome::NoChange(why) => {
            println!("no change: {why}; the original is unchanged");
            return Ok(ExitCode::SUCCESS);
        }
        Outcome::Done(d) => d,
    };
    let c = &done.capsule;
    println!("{}\n", c.decision);
    // The winner first, then every other e-graph candidate with why it did not win.
    let others = c.candidates.iter().enumerate().filter(|(k, r)| Some(*k) != done.winner && !r.explain.is_empty()).map(|(_, r)| r);
    let shown: Vec<&CandidateReport> = done.winner.map(|k| &c.candidates[k]).into_iter().chain(others).collect();
    if shown.is_empty() {
        println!("no e-graph rewrite changed the program. MLX's trace records no source lines; values are named %N as in `superopt trace`.");
    }
    for r in shown {
        let status = match (&r.dropped, r.verified, r.wins) {
            (_, _, true) => "the winner".to_string(),
            (Some(why), _, _) => format!("dropped: {why}"),
            (None, true, false) => "verified, not faster at every size".into(),
            (None, false, _) => "not verified".into(),
        };
        println!("{} ({status})", r.name);
        for rule in &r.rules {
            println!("  rule  {rule}");
        }
        for line in &r.explain {
            println!("  {line}");
        }
        println!();
    }
    println!("(%N are the traced values of `superopt trace --size typical`; MLX's trace records no source lines.)");
    Ok(ExitCode::SUCCESS)
}

/// Traces, searches, verifies and times; decides nothing is written yet.
pub fn optimize(args: &RunArgs) -> Result<Outcome> {
    let started = Instant::now();
    let tol = Tolerance::parse(&args.tolerance)
        .with_context(|| format!("unknown tolerance class {:?}; use relative, fp32, fp16, bf16 or quantized", args.tolerance))?;
    let objective = match args.objective {
        ObjectiveArg::All => Objective::All,
        ObjectiveArg::Typical => Objective::Typical,
        ObjectiveArg::Geomean => Objective::Geomean,
    };
    let progress = spinner();
    progress.set_message("starting the worker");
    let mut s = Session::start(&args.common)?;
    let mut stages = Stages { last: Instant::now(), done: vec![] };
    stages.mark("start");

    progress.set_message("tracing fn at small, typical, large");
    let traces = match SIZES.iter().map(|z| s.trace(z)).collect::<Result<Vec<_>>>() {
        Ok(t) => t,
        Err(e) => return traced_failure(e, &progress),
    };
    let plan = superopt_trace::align(&traces, 1);
    stages.mark("trace");

    progress.set_message("measuring the device (once per device)");
    let device = s.device();
    progress.set_message("searching");
    // Saturation gets a fifth of the budget, at most a minute; verification and timing need the rest.
    let search_time = Duration::from_secs(args.time_budget).mul_f64(0.2).min(Duration::from_secs(60));
    let mut candidates = proposals(&plan, search_time, device);
    let mut notes = vec![];
    match crate::kernels::lowered(&candidates, &s.hello.backend) {
        Ok(lowered) => candidates.extend(lowered),
        Err(why) => notes.push(why),
    }
    stages.mark("search");

    progress.set_message("emitting the traced program");
    let workdir = tempfile::tempdir()?;
    let mut reports: Vec<CandidateReport> = candidates.iter().map(|c| candidate_report(c, &traces)).collect();
    // The traced program and candidates with kernels to tune are loaded now; the rest just
    // before their verification, so that those the budget never reaches cost nothing.
    let mut staged = vec![false; candidates.len()];
    for (k, c) in candidates.iter().enumerate().filter(|(k, c)| *k == 0 || crate::kernels::tunable(c)) {
        match stage_candidate(&mut s, c, k, workdir.path()) {
            Ok(()) => staged[k] = true,
            Err(why) if k == 0 => {
                progress.finish_and_clear();
                return Ok(Outcome::NoChange(why));
            }
            Err(why) => reports[k].dropped = Some(why),
        }
    }
    stages.mark("emit");

    // Tuning may take a quarter of the budget; untuned launches keep default parameters.
    let tune_deadline = started + Duration::from_secs(args.time_budget).mul_f64(0.25);
    tune_kernels(&mut s, &mut candidates, &mut reports, workdir.path(), tune_deadline, &progress);
    stages.mark("tune");

    progress.set_message("field check");
    // The exact check is an extra; past two fifths of the budget it is left to the float check.
    let field_deadline = started + Duration::from_secs(args.time_budget).mul_f64(0.4);
    field_checks(&candidates, &traces[0], &mut reports, field_deadline);
    stages.mark("field");

    let seeds: Vec<u64> = (0..args.seeds).collect();
    // Verification may use most of the budget; timing needs the rest.
    let deadline = started + Duration::from_secs(args.time_budget).mul_f64(0.8);
    // On a GPU the CPU's cores are free: compute every case's reference at once. On the
    // CPU backend they would only compete with the candidates; each comes when needed.
    let gpu = s.hello.backend != "cpu";
    // A prepare cut short restarts the worker, which loses every reference computed so far:
    // each may run up to the verification deadline.
    let references = Instant::now();
    for size in SIZES.iter().filter(|_| gpu) {
        progress.set_message(format!("computing float64 references at {size}"));
        s.prepare(size, &seeds, deadline);
    }
    if gpu && Instant::now() >= deadline {
        let took = references.elapsed().as_secs();
        notes.push(format!("the float64 references (computed on the CPU) took {took}s and used up the verification budget: run again with a larger --time-budget (this run: {}s)", args.time_budget));
    }
    for k in verification_order(&candidates, &device) {
        progress.set_message(format!("verifying {}", candidates[k].name));
        if !staged[k] && reports[k].dropped.is_none() && Instant::now() < deadline {
            match stage_candidate(&mut s, &candidates[k], k, workdir.path()) {
                Ok(()) => staged[k] = true,
                Err(why) => reports[k].dropped = Some(why),
            }
        }
        verify_candidate(&mut s, &mut reports[k], &seeds, tol, deadline);
    }
    stages.mark("verify");
    let round_trip = round_trip_note(&reports[0]);

    let left = Duration::from_secs(args.time_budget).saturating_sub(started.elapsed() + Duration::from_secs(3));
    if let Err(e) = bench_contenders(&mut s, &candidates, &mut reports, left, &progress) {
        progress.finish_and_clear();
        return Err(harness_fault(e));
    }
    let winner = pick_winner(&mut reports, objective);
    let round = crate::by_size::Round { traces: &traces, dir: workdir.path(), seeds: &seeds, tol, end: started + Duration::from_secs(args.time_budget) };
    notes.extend(crate::by_size::try_by_size(&mut s, &mut candidates, &mut reports, winner, &round, &progress));
    stages.mark("bench");
    progress.finish_and_clear();

    let winner = pick_winner(&mut reports, objective);

    let harness_text = std::fs::read_to_string(&s.harness)?;
    let mut capsule = Capsule {
        tool: "superopt".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        mlx: s.hello.mlx.clone(),
        python: s.hello.python.clone(),
        device: s.hello.device.clone(),
        harness: args.common.harness.display().to_string(),
        harness_sha256: format!("{:x}", Sha256::digest(harness_text.as_bytes())),
        objective: format!("{objective:?}").to_lowercase(),
        tolerance: tol.name().into(),
        seeds,
        shapes: plan.per_size_because.clone().map_or("one program for all sizes".into(), |w| format!("one program per size: {w}")),
        candidates: reports,
        winner: winner.map(|k| candidates[k].name.clone()),
        decision: String::new(),
        output: None,
        stages: vec![],
        ceilings: Some(Ceilings { bytes_per_s: device.bytes_per_s, flops_per_s: device.flops_per_s, fixed_s: device.fixed_s }),
        floors: vec![],
        notes,
    };
    roofline(&mut capsule, &traces);
    capsule.decision = match winner {
        Some(k) => format!("verified speedup: {} {round_trip}", candidates[k].name),
        None => format!("no verified speedup — original unchanged: {}. {round_trip}", why_no_win(&capsule, objective)),
    };
    Ok(Outcome::Done(Box::new(Done { capsule, candidates, winner, session: s, harness_text, stages, _workdir: workdir })))
}

/// The traced program first, then what every strategy proposes for it.
pub fn proposals(plan: &superopt_ir::Plan, search_time: Duration, device: Device) -> Vec<Candidate> {
    let mut candidates = vec![as_traced(plan)];
    for strategy in default_strategies(search_time, device) {
        candidates.extend(strategy.propose(plan));
    }
    candidates
}

/// Tunes the launches of every generated kernel on the device, then emits its
/// candidate again with the parameters picked; a candidate whose kernels fail is dropped.
fn tune_kernels(s: &mut Session, candidates: &mut [Candidate], reports: &mut [CandidateReport], dir: &Path, deadline: Instant, progress: &ProgressBar) {
    let mut cache = crate::kernels::TuneCache::open(&s.device_key());
    for k in 0..candidates.len() {
        if reports[k].dropped.is_some() || !crate::kernels::tunable(&candidates[k]) {
            continue;
        }
        progress.set_message(format!("tuning the kernels of {}", candidates[k].name));
        let staged = crate::kernels::tune(s, &mut candidates[k], &mut cache, deadline).map_err(|e| format!("tuning its kernels: {e}"));
        match staged.and_then(|lines| stage_candidate(s, &candidates[k], k, dir).map(|_| lines)) {
            Ok(lines) => reports[k].launches = lines,
            Err(why) => reports[k].dropped = Some(why),
        }
    }
}

/// Each size's floor on the device, and the fraction of it each timed candidate reaches.
fn roofline(c: &mut Capsule, traces: &[superopt_ir::Program]) {
    let Some(ceilings) = c.ceilings else { return };
    c.floors = SIZES.iter().zip(traces).map(|(z, t)| floors::floor(z, t, ceilings)).collect();
    for r in c.candidates.iter_mut() {
        for (z, f) in r.sizes.iter_mut().zip(c.floors.iter_mut()) {
            if let Some(t) = &z.timing {
                z.roofline = Some(f.seconds / t.candidate.median);
                f.original = Some(f.seconds / t.baseline.median);
            }
        }
    }
}

/// The traced program first (the round-trip check), then the rest by modelled cost, so
/// that a budget that runs out drops the least promising.
fn verification_order(candidates: &[Candidate], device: &Device) -> Vec<usize> {
    let cost: Vec<f64> = candidates.iter().map(|c| modelled_cost(c, device)).collect();
    let mut rest: Vec<usize> = (1..candidates.len()).collect();
    rest.sort_by(|a, b| cost[*a].total_cmp(&cost[*b]));
    [vec![0], rest].concat()
}

/// Times the verified candidates against `fn`, interleaved, at each size.
fn bench_contenders(
    s: &mut Session,
    candidates: &[Candidate],
    reports: &mut [CandidateReport],
    budget: Duration,
    progress: &ProgressBar,
) -> Result<(), WorkerError> {
    let contenders: Vec<usize> = (0..candidates.len()).filter(|k| reports[*k].verified && reports[*k].dropped.is_none()).collect();
    bench(s, candidates, reports, &contenders, budget, progress)
}

/// Times `contenders` against `fn`, interleaved, at each size.
pub(crate) fn bench(
    s: &mut Session,
    candidates: &[Candidate],
    reports: &mut [CandidateReport],
    contenders: &[usize],
    budget: Duration,
    progress: &ProgressBar,
) -> Result<(), WorkerError> {
    if contenders.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = std::iter::once("original".to_string()).chain(contenders.iter().map(|k| candidates[*k].name.clone())).collect();
    for (z, size) in SIZES.iter().enumerate() {
        progress.set_message(format!("timing {} candidates at {size}", contenders.len()));
        let samples = s.time(&ids, size, budget / SIZES.len() as u32)?;
        for k in contenders {
            reports[*k].sizes[z].timing = Some(compare(&samples["original"], &samples[&candidates[*k].name]));
        }
    }
    Ok(())
}

/// Marks the wins under `objective`; the winner has the best geometric-mean speedup.
fn pick_winner(reports: &mut [CandidateReport], objective: Objective) -> Option<usize> {
    for r in reports.iter_mut() {
        let per_size: Vec<(String, superopt_bench::Comparison)> =
            r.sizes.iter().filter_map(|z| z.timing.clone().map(|t| (z.size.clone(), t))).collect();
        r.wins = r.verified && r.dropped.is_none() && per_size.len() == SIZES.len() && is_win(objective, &per_size);
    }
    reports.iter().enumerate().filter(|(_, r)| r.wins).max_by(|(_, a), (_, b)| score(a).total_cmp(&score(b))).map(|(k, _)| k)
}

fn traced_failure(e: anyhow::Error, progress: &ProgressBar) -> Result<Outcome> {
    progress.finish_and_clear();
    if let Some(superopt_trace::TraceError::Import(superopt_ir::ImportError::Unsupported(op))) = e.downcast_ref() {
        return Ok(Outcome::NoChange(format!("unsupported primitive {op} (superopt's IR does not know it yet)")));
    }
    if let Some(crate::session::Untraceable(why)) = e.downcast_ref() {
        return Ok(Outcome::NoChange(why.clone()));
    }
    Err(e)
}

pub(crate) fn score(r: &CandidateReport) -> f64 {
    geomean(r.sizes.iter().filter_map(|z| z.timing.as_ref().map(|t| t.speedup)))
}

pub(crate) fn candidate_report(c: &Candidate, traces: &[superopt_ir::Program]) -> CandidateReport {
    CandidateReport {
        name: c.name.clone(),
        rules: c.rules.clone(),
        explain: c.explain.clone(),
        compiled: c.compile != Compile::Eager,
        nodes: c.plan.variants.iter().map(|(_, p)| p.nodes.len()).max().unwrap_or(0),
        sizes: SIZES
            .iter()
            .zip(traces)
            .map(|(z, t)| SizeReport { size: z.to_string(), shapes: t.inputs.iter().map(|i| t.value(*i).shape.clone()).collect(), verdict: None, timing: None, roofline: None })
            .collect(),
        verified: false,
        wins: false,
        dropped: None,
        field: vec![],
        launches: vec![],
        metal: crate::kernels::metal_source(c),
    }
}

/// Emits candidate `k` into `dir` and loads it in the worker.
pub(crate) fn stage_candidate(s: &mut Session, c: &Candidate, k: usize, dir: &Path) -> Result<(), String> {
    let consts = format!("cand{k}.safetensors");
    let info = ModuleInfo { harness: &s.harness.to_string_lossy(), constants_file: &consts, notes: vec![] };
    let e = emit(c, &info).map_err(|e| e.to_string())?;
    if !e.tensors.is_empty() {
        s.save_constants(&e.tensors, &dir.join(&consts)).map_err(|e| e.to_string())?;
    }
    let path = dir.join(format!("cand{k}.py"));
    std::fs::write(&path, &e.source).map_err(|e| e.to_string())?;
    s.register(&c.name, &path, "optimized").map_err(|e| format!("the emitted module does not load: {e}"))
}

/// The exact check of every candidate whose plan differs from the traced one; candidates
/// with the same plan share one check. A conclusive disagreement drops the candidate.
fn field_checks(candidates: &[Candidate], small: &superopt_ir::Program, reports: &mut [CandidateReport], deadline: Instant) {
    let traced = &candidates[0].plan;
    for k in 1..candidates.len() {
        let plan = &candidates[k].plan;
        if plan == traced {
            continue;
        }
        reports[k].field = match (1..k).find(|&j| candidates[j].plan == *plan) {
            Some(j) => reports[j].field.clone(),
            None => field_check(traced, plan, small, deadline),
        };
        if let Some(refuted) = reports[k].field.iter().find(|f| f.refutes()) {
            reports[k].dropped.get_or_insert(format!("field check: {}", refuted.summary()));
        }
    }
}

/// Each plan variant against the traced one, on inputs of the small size where the
/// variant admits them; variants reached after `deadline` are not checked.
fn field_check(traced: &superopt_ir::Plan, plan: &superopt_ir::Plan, small: &superopt_ir::Program, deadline: Instant) -> Vec<FieldReport> {
    let small_types = superopt_trace::align::input_types(small);
    let mut reports = vec![];
    for ((guard, original), (_, candidate)) in traced.variants.iter().zip(&plan.variants) {
        if Instant::now() > deadline {
            reports.push(FieldReport::skipped("the time budget's share for it ran out (left to the float check)"));
            break;
        }
        let types = if guard.admits(&small_types) { small_types.clone() } else { superopt_trace::align::input_types(original) };
        reports.push(superopt_verify::field::check(original, candidate, &types, 2));
    }
    reports
}

pub(crate) fn verify_candidate(s: &mut Session, r: &mut CandidateReport, seeds: &[u64], tol: Tolerance, deadline: Instant) {
    if r.dropped.is_some() {
        return;
    }
    for z in r.sizes.iter_mut() {
        match s.verify(&r.name, &z.size, seeds, tol, Some(deadline)) {
            Ok(figs) => z.verdict = Some(judge(&figs, tol)),
            Err(e) => {
                r.dropped = Some(format!("at {}: {e}", z.size));
                return;
            }
        }
    }
    r.verified = r.sizes.iter().all(|z| z.verdict.as_ref().is_some_and(|v| v.accepted));
}

fn round_trip_note(traced: &CandidateReport) -> String {
    let identical = traced.sizes.iter().all(|z| z.verdict.as_ref().is_some_and(|v| v.bit_identical));
    match (&traced.dropped, identical) {
        (Some(why), _) => format!("(round trip failed: {why})"),
        (None, true) => "(round trip bit-identical at every size)".into(),
        (None, false) => "(round trip NOT bit-identical: a superopt bug, please report it)".into(),
    }
}

fn why_no_win(c: &Capsule, objective: Objective) -> String {
    let tried: Vec<&CandidateReport> = c.candidates.iter().collect();
    if tried.iter().all(|r| !r.verified || r.dropped.is_some()) {
        return "no candidate passed verification".into();
    }
    let best = tried.iter().filter(|r| r.verified).max_by(|a, b| score(a).total_cmp(&score(b))).unwrap();
    let sizes: Vec<String> = best.sizes.iter().filter_map(|z| z.timing.as_ref().map(|t| format!("{} {:.2}x", z.size, t.speedup))).collect();
    let need = match objective {
        Objective::All => "faster by >3% at every size",
        Objective::Typical => "faster by >3% at typical and not slower elsewhere",
        Objective::Geomean => "a geomean speedup >3% and not slower anywhere",
    };
    format!("the best verified candidate, {}, was {} (needed: {need})", best.name, sizes.join(", "))
}

fn module_notes(r: &CandidateReport) -> Vec<String> {
    let mut notes = vec!["Verified and timed by superopt:".to_string()];
    for z in &r.sizes {
        if let Some(t) = &z.timing {
            notes.push(format!("  {} {:?}: {:.2}x faster", z.size, z.shapes, t.speedup));
        }
    }
    notes
}

/// Writes the winner as `out`, with its constants beside it, atomically.
fn write_module(s: &mut Session, c: &Candidate, out: &Path, notes: Vec<String>) -> Result<()> {
    let stem = out.file_stem().context("the output path has no file name")?.to_string_lossy().to_string();
    let consts = format!("{stem}.safetensors");
    let info = ModuleInfo { harness: &s.harness.to_string_lossy(), constants_file: &consts, notes };
    let e = emit(c, &info)?;
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).map_or(PathBuf::from("."), Path::to_path_buf);
    if !e.tensors.is_empty() {
        let tmp = tempfile::Builder::new().suffix(".safetensors").tempfile_in(&dir)?;
        s.save_constants(&e.tensors, tmp.path())?;
        tmp.persist(dir.join(&consts))?;
    }
    write_atomic(out, e.source.as_bytes())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).map_or(PathBuf::from("."), Path::to_path_buf);
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).with_context(|| format!("cannot write into {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
