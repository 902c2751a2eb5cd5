//! A run of the superoptimizer: its stages in order, each a function over one ledger
//! ([`ledger::Run`], one [`ledger::Entry`] per candidate):
//!
//! [`trace`] -> [`propose`] -> [`stage`] -> [`tune`] -> [`field`] -> [`verify`] ->
//! [`bench`] -> [`by_size`] -> [`decide`]
//!
//! [`budget`] names each stage's share of the time budget; [`session`] is the worker with
//! the harness loaded; [`output`] writes the winner; [`cache`] is the per-device cache.

pub mod bench;
pub mod budget;
pub mod by_size;
pub mod cache;
pub mod decide;
pub mod field;
pub mod ledger;
pub mod output;
pub mod propose;
pub mod session;
pub mod stage;
pub mod trace;
pub mod tune;
pub mod verify;

use std::time::{Duration, Instant};
use superopt_bench::Objective;
use superopt_report::{Capsule, Stage};
use superopt_search::Candidate;
use superopt_verify::Tolerance;

pub use ledger::{CandidateId, Entry, Run, Status};
pub use session::{harness_fault, HarnessFault, Session, SessionConfig, Untraceable};

/// What a run is asked to do.
#[derive(Clone, Debug)]
pub struct Config {
    pub session: SessionConfig,
    pub objective: Objective,
    pub tolerance: Tolerance,
    pub time_budget: Duration,
    /// Seeds per size for verification.
    pub seeds: u64,
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
    stages: Vec<Stage>,
    since: Instant,
    /// The staged candidates' modules: a worker restarted later reloads them from here.
    _workdir: tempfile::TempDir,
}

impl Done {
    fn new(
        capsule: Capsule,
        candidates: Vec<Candidate>,
        winner: Option<usize>,
        session: Session,
        harness_text: String,
        stages: Vec<Stage>,
        workdir: tempfile::TempDir,
    ) -> Done {
        Done { capsule, candidates, winner, session, harness_text, stages, since: Instant::now(), _workdir: workdir }
    }

    /// Ends the last stage (deciding and writing) and puts every stage's time in the capsule.
    pub fn finish(&mut self) {
        self.stages.push(Stage { name: "decide".into(), seconds: self.since.elapsed().as_secs_f64() });
        self.capsule.stages = std::mem::take(&mut self.stages);
    }
}

/// Traces, proposes, verifies and times; decides, and writes nothing.
pub fn optimize(config: &Config, progress: &dyn Fn(&str)) -> anyhow::Result<Outcome> {
    let budget = budget::Budget::start(config.time_budget);
    progress("starting the worker");
    let mut session = Session::start(&config.session)?;
    let start = budget.start.elapsed().as_secs_f64();
    let traced_at = Instant::now();
    progress("tracing fn at small, typical, large");
    let traces = match trace::trace(&mut session) {
        Ok(t) => t,
        Err(e) => return trace::failure(e),
    };
    let mut run = Run::new(config, session, budget, traces, progress)?;
    run.stages.push(Stage { name: "start".into(), seconds: start });
    run.stages.push(Stage { name: "trace".into(), seconds: traced_at.elapsed().as_secs_f64() });
    propose::propose(&mut run);
    run.mark("search");
    if let Err(why) = stage::stage_first(&mut run) {
        return Ok(Outcome::NoChange(why));
    }
    run.mark("emit");
    tune::tune(&mut run);
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
