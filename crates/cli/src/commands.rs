//! `bench`, `trace` and `verify`, and the dispatch to the other commands.

use crate::cli::{Cli, Command, CommonArgs, Format, TraceArgs, VerifyArgs};
use anyhow::{bail, Context, Result};
use std::process::ExitCode;
use std::time::Duration;
use superopt_bench::{Size, Timing};
use superopt_report::format_seconds;
use superopt_run::{harness_fault, HarnessFault, Sampling, Session};
use superopt_verify::{judge, Tolerance};
use superopt_worker::protocol::ProgramId;

pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    let result = match cli.command {
        Command::Run(a) => crate::run::run(a),
        Command::Explain(a) => crate::run::explain(a),
        Command::Bench(a) => bench(a),
        Command::Trace(a) => trace(a),
        Command::Verify(a) => verify(a),
        Command::Suite(a) => crate::suite::suite(a),
        Command::Kernels(a) => crate::kernels::command(a),
        Command::Model(a) => crate::model::command(a),
        Command::Lint(a) => crate::lint::command(a),
    };
    match result {
        Err(e) if e.downcast_ref::<HarnessFault>().is_some() => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(3))
        }
        other => other,
    }
}

fn bench(a: CommonArgs) -> Result<ExitCode> {
    let mut s = Session::start(&a.session())?;
    println!("{:<8} {:>14} {:>8} {:>8}   ({})", "size", "median", "spread", "samples", s.hello.device);
    for size in Size::ALL {
        let samples =
            s.time(&[ProgramId::Original], size, Duration::from_secs(10), Sampling::Steady).map_err(harness_fault)?;
        let t = Timing::of(&samples[&ProgramId::Original]);
        println!("{size:<8} {:>14} {:>7.1}% {:>8}", format_seconds(t.median), t.spread * 100.0, t.samples);
    }
    Ok(ExitCode::SUCCESS)
}

fn trace(a: TraceArgs) -> Result<ExitCode> {
    let mut s = Session::start(&a.common.session())?;
    let plan = if a.size == "all" {
        let traces = Size::ALL.iter().map(|z| s.trace(*z)).collect::<Result<Vec<_>>>()?;
        superopt_trace::align(&traces, 1)
    } else {
        let Some(size) = Size::parse(&a.size) else {
            bail!("--size must be small, typical, large or all; got {:?}", a.size);
        };
        let p = s.trace(size)?;
        let guard = superopt_ir::Guard::exact(&superopt_trace::align::input_types(&p));
        superopt_ir::Plan { variants: vec![(guard, p)], per_size_because: None }
    };
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
        Format::Text | Format::Dot => {
            if let Some(why) = &plan.per_size_because {
                println!("# one program per size: {why}");
            }
            for (k, (_, p)) in plan.variants.iter().enumerate() {
                if plan.variants.len() > 1 {
                    println!("# variant {k}");
                }
                let text = if matches!(a.format, Format::Dot) {
                    superopt_ir::print::dot(p)
                } else {
                    superopt_ir::print::text(p)
                };
                print!("{text}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Traces fn and the candidate at the small size and runs the field check on the pair.
fn field_check(s: &mut Session) -> Result<superopt_verify::field::FieldReport, String> {
    let original = s.trace(Size::Small).map_err(|e| format!("{e:#}"))?;
    let candidate = superopt_trace::trace_program(&mut s.worker, ProgramId::Checked, Size::Small, s.timeout);
    let candidate = candidate.map_err(|e| e.to_string())?;
    let types = superopt_trace::align::input_types(&original);
    Ok(superopt_verify::field::check(&original, &candidate, &types, 2))
}

/// `superopt verify HARNESS CANDIDATE...`: each candidate judged as a run judges it, the
/// float64 references computed once for all; exit 1 if any is rejected.
fn verify(a: VerifyArgs) -> Result<ExitCode> {
    let tol = Tolerance::parse(&a.tolerance).with_context(|| format!("unknown tolerance class {:?}", a.tolerance))?;
    let mut s = Session::start(&a.common.session())?;
    let seeds: Vec<u64> = (0..a.seeds).collect();
    let cases = superopt_run::references::all_cases(&seeds).len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3600);
    s.choose_reference_device();
    println!("float64 references on the {}: {}", s.reference_device.device.name(), s.reference_device.why);
    let workers = superopt_run::references::workers(s.backend(), cases);
    s.start_references(&seeds, workers, Default::default(), deadline);
    println!(
        "checks: shapes and dtypes, NaN/Inf positions, integer outputs exact, error against float64 ({} rule); \
         {} seeds per size plus edge inputs: {}",
        tol.name(),
        seeds.len(),
        superopt_verify::EDGE_VARIANTS.map(|v| v.name()).join(", ")
    );
    let mut all = true;
    for candidate in &a.candidates {
        println!("candidate: {}", candidate.display());
        let ok = verify_candidate(&mut s, candidate, &seeds, tol, deadline, a.cases)?;
        println!("{}", if ok { "accepted" } else { "rejected" });
        all &= ok;
    }
    Ok(if all { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Each case's figures at `size`, one line per output (`--cases`).
fn print_cases(size: Size, figs: &[superopt_verify::SeedFigures]) {
    let e = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.2e}"));
    for f in figs {
        for (k, o) in f.outputs.iter().enumerate() {
            let identical = if o.bit_identical == Some(true) { ", bit-identical" } else { "" };
            println!(
                "  {size} seed {} {} output {k}: error {} max {} (original's {} max {}){identical}",
                f.seed,
                f.variant.name(),
                e(o.cand_l2),
                e(o.cand_max),
                e(o.orig_l2),
                e(o.orig_max)
            );
        }
    }
}

/// One candidate's field check and verdict at every size, printed; whether it is accepted.
fn verify_candidate(
    s: &mut Session,
    candidate: &std::path::Path,
    seeds: &[u64],
    tol: Tolerance,
    deadline: std::time::Instant,
    cases: bool,
) -> Result<bool> {
    let path = std::fs::canonicalize(candidate).with_context(|| format!("cannot read {}", candidate.display()))?;
    let text = std::fs::read_to_string(&path)?;
    let entry = if text.contains("def optimized") || text.contains("optimized =") { "optimized" } else { "fn" };
    if let Err(e) = s.register(ProgramId::Checked, &path, entry) {
        println!("rejected: {e}");
        return Ok(false);
    }
    let field = field_check(s);
    println!(
        "field check (small): {}",
        field.as_ref().map_or_else(|e| format!("not applicable: {e}"), |r| r.summary())
    );
    let mut ok = !field.as_ref().is_ok_and(|r| r.refutes());
    if !ok {
        println!("{:<8} FAILED, caught by field check: the candidate computes another function", "small");
    }
    s.await_references(deadline);
    for size in Size::ALL {
        match s.verify(&ProgramId::Checked, size, seeds, tol, None) {
            Ok(figs) => {
                let v = judge(&figs, tol);
                ok &= v.accepted;
                if cases {
                    print_cases(size, &figs);
                }
                let detail = if v.bit_identical {
                    "bit-identical".to_string()
                } else {
                    let spread = v.spread.map(|(l2, max)| format!("; its rounding spread {l2:.2e}, max {max:.2e}"));
                    format!(
                        "error {:.2e} (original's {:.2e}), max {:.2e} (original's {:.2e}){}",
                        v.worst_l2,
                        v.original_l2,
                        v.worst_max,
                        v.original_max,
                        spread.unwrap_or_default()
                    )
                };
                match &v.reason {
                    None => println!("{size:<8} passed: {detail}"),
                    Some(why) => {
                        println!("{size:<8} FAILED, caught by {}: {why}", v.caught_by.as_deref().unwrap_or("?"))
                    }
                }
            }
            Err(e) => {
                ok = false;
                println!("{size:<8} FAILED: {e}");
            }
        }
    }
    Ok(ok)
}
