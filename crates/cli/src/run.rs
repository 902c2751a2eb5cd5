//! `superopt run` and `superopt explain`: a run (`superopt-run`) with a spinner, then
//! the table, the module, the diff and the capsule.

use crate::cli::{ObjectiveArg, RunArgs};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::process::ExitCode;
use std::time::Duration;
use superopt_bench::Objective;
use superopt_emit::{emit, ModuleInfo};
use superopt_report::CandidateReport;
use superopt_run::output::{module_notes, write_atomic, write_module};
use superopt_run::{optimize, Config, Done, Outcome};
use superopt_verify::Tolerance;

fn spinner() -> ProgressBar {
    let p = ProgressBar::new_spinner();
    p.set_style(ProgressStyle::with_template("{spinner} {elapsed:>3} {msg}").expect("a valid template"));
    p.enable_steady_tick(Duration::from_millis(120));
    p
}

/// The run's configuration from the flags.
pub fn config(args: &RunArgs) -> Result<Config> {
    let tolerance = Tolerance::parse(&args.tolerance).with_context(|| {
        format!("unknown tolerance class {:?}; use relative, fp32, fp16, bf16 or quantized", args.tolerance)
    })?;
    let objective = match args.objective {
        ObjectiveArg::All => Objective::All,
        ObjectiveArg::Typical => Objective::Typical,
        ObjectiveArg::Geomean => Objective::Geomean,
    };
    let session = args.common.session();
    Ok(Config { session, objective, tolerance, time_budget: Duration::from_secs(args.time_budget), seeds: args.seeds })
}

/// A run with a spinner that says what it is doing.
pub fn optimize_with_progress(config: &Config) -> Result<Outcome> {
    let progress = spinner();
    let outcome = optimize(config, &|msg| progress.set_message(msg.to_string()));
    progress.finish_and_clear();
    outcome
}

/// A finished run, or `None` after saying why the original stays.
fn finished(args: &RunArgs) -> Result<Option<Box<Done>>> {
    match optimize_with_progress(&config(args)?)? {
        Outcome::NoChange(why) => {
            let capsule = superopt_report::Capsule::no_change(&args.common.harness.display().to_string(), &why);
            println!("{}", capsule.decision);
            if let Some(path) = &args.json {
                write_atomic(path, serde_json::to_string_pretty(&capsule)?.as_bytes())?;
            }
            Ok(None)
        }
        Outcome::Done(d) => Ok(Some(d)),
    }
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let Some(mut done) = finished(&args)? else { return Ok(ExitCode::SUCCESS) };
    let Done { capsule, candidates, winner, session, harness_text, .. } = &mut *done;
    if let (Some(k), Some(out)) = (*winner, &args.output) {
        let notes = module_notes(&capsule.candidates[k]);
        write_module(session, &candidates[k], out, notes)?;
        capsule.output = Some(out.display().to_string());
    }
    if let (Some(k), true) = (*winner, args.diff) {
        let harness = session.harness.to_string_lossy();
        let info = ModuleInfo { harness: &harness, constants_file: "optimized.safetensors", notes: vec![] };
        let e = emit(&candidates[k], &info)?;
        println!("{}", superopt_report::diff(harness_text, &e.source, &capsule.harness, "optimized.py"));
    }
    done.finish();
    print!("{}", superopt_report::table(&done.capsule));
    if let Some(path) = &args.json {
        write_atomic(path, serde_json::to_string_pretty(&done.capsule)?.as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `superopt explain`: the run's decision, then the rewrites behind the winner and
/// behind each other e-graph candidate, with why it did not win.
pub fn explain(args: RunArgs) -> Result<ExitCode> {
    let Some(done) = finished(&args)? else { return Ok(ExitCode::SUCCESS) };
    let c = &done.capsule;
    println!("{}\n", c.decision);
    // The winner first, then every other e-graph candidate with why it did not win.
    let others = c.candidates.iter().enumerate().filter(|(k, r)| Some(*k) != done.winner && !r.explain.is_empty());
    let shown: Vec<&CandidateReport> =
        done.winner.map(|k| &c.candidates[k]).into_iter().chain(others.map(|(_, r)| r)).collect();
    if shown.is_empty() {
        println!(
            "no e-graph rewrite changed the program. MLX's trace records no source lines; \
             values are named %N as in `superopt trace`."
        );
    }
    for r in shown {
        let status = match (&r.dropped, r.verified, r.wins) {
            (_, _, true) => "the winner".to_string(),
            (Some(why), _, _) => format!("dropped: {why}"),
            (None, true, false) if r.first_look_only => "verified, not among the finalists of the first timing".into(),
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
