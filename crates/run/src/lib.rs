//! A run of the superoptimizer: its stages in order, each a function over one ledger
//! ([`ledger::Run`], one [`ledger::Entry`] per candidate):
//!
//! [`trace`] -> ([`references`] start) -> [`propose`] -> [`stage`] -> [`tune`] -> ([`warm`] start) -> [`field`]
//! -> [`verify`] (with its [`screen`]) -> [`bench`](mod@bench) -> [`by_size`] -> [`decide`]
//!
//! [`budget`] names each stage's share of the time budget; [`session`] is the worker with
//! the harness loaded; [`references`] the pool that computes the float64 references
//! ahead; [`config`] and [`outcome`] are what a run takes and gives; [`output`]
//! writes the winner; [`cache`] is the per-device cache.

pub mod bench;
pub mod budget;
pub mod by_size;
pub mod cache;
pub mod config;
pub mod decide;
pub mod field;
pub mod ledger;
pub mod outcome;
pub mod output;
pub mod propose;
pub mod references;
pub mod screen;
pub mod session;
pub mod stage;
pub mod trace;
pub mod tune;
pub mod verify;
pub mod warm;

use std::time::Instant;
use superopt_report::Stage;

pub use config::Config;
pub use ledger::{CandidateId, Entry, Run, Status};
pub use outcome::{Done, Outcome};
pub use session::{harness_fault, HarnessFault, Sampling, Session, SessionConfig, Untraceable};

/// What a harness's `DEVICE_TIME` makes of every timing, said in the capsule.
pub const DEVICE_TIME_NOTE: &str = "timed on the device only (DEVICE_TIME): each sample's calls are built before \
     the clock and evaluated together, as a model's layers run where the device is the bottleneck";

/// Traces, proposes, verifies and times; decides, and writes nothing.
pub fn optimize(config: &Config, progress: &dyn Fn(&str)) -> anyhow::Result<Outcome> {
    let mut budget = budget::Budget::start(config.time_budget);
    progress("starting the worker");
    let mut session = Session::start(&config.session)?;
    // Measured before warm workers start (they compile on every core), once per device.
    progress("measuring the device (once per device)");
    let device = session.device();
    let ahead = budget.last_deadline_before_trace(session.timeout * 6); // two requests per size
    let warm = warm::for_trace(&session, ahead);
    // The pool's workers load the harness while fn is traced (a real model's harness loads
    // in tens of seconds); its cases wait for the trace.
    let seeds: Vec<u64> = (0..config.seeds).collect();
    let workers = references::workers(session.backend(), references::all_cases(&seeds).len());
    session.preload_references(&seeds, workers, ahead);
    let start = budget.start.elapsed().as_secs_f64();
    let traced_at = Instant::now();
    progress("tracing fn at small, typical, large");
    let traces = match trace::trace(&mut session) {
        Ok(t) => t,
        Err(e) => return trace::failure(e),
    };
    if let Some(why) = trace::unbuildable(&traces) {
        return Ok(Outcome::NoChange(why));
    }
    budget.restart();
    let mut run = Run::new(config, session, budget, traces, progress)?;
    (run.device, run.warm) = (device, warm);
    run.notes.extend(trace::varies_note(&run.session.varies));
    if run.session.device_time {
        run.notes.push(DEVICE_TIME_NOTE.into());
    }
    run.stages.push(Stage { name: "start".into(), seconds: start });
    run.stages.push(Stage { name: "trace".into(), seconds: traced_at.elapsed().as_secs_f64() });
    run.session.choose_reference_device();
    run.session.release_references(references::scale(&run.traces), references::choiceless(&run.traces));
    run.mark("references");
    propose::propose(&mut run);
    run.mark("search");
    if let Err(why) = stage::stage_first(&mut run) {
        return Ok(Outcome::NoChange(why));
    }
    run.mark("emit");
    tune::tune(&mut run);
    warm::start(&mut run);
    run.mark("tune");
    field::field(&mut run);
    run.mark("field");
    verify::verify(&mut run);
    run.mark("verify");
    bench::bench(&mut run).map_err(harness_fault)?;
    let winner = decide::pick_winner(&mut run.entries, config.objective);
    by_size::by_size(&mut run, winner);
    run.mark("bench");
    decide::decide(run)
}
