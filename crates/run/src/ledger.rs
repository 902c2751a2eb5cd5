//! The run's ledger: one entry per candidate, which every stage reads and writes.

use crate::budget::Budget;
use crate::config::Config;
use crate::session::Session;
use std::collections::BTreeMap;
use std::time::Instant;
use superopt_bench::{geomean, Comparison, Size};
use superopt_ir::{Plan, Program};
use superopt_report::Stage;
use superopt_search::egraph::cost::Device;
use superopt_search::Candidate;
use superopt_verify::field::FieldReport;
use superopt_verify::Verdict;
use superopt_worker::protocol::ProgramId;

/// A candidate's place in the ledger. The first is the program as traced: the
/// round-trip check, and the program every other one is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CandidateId(pub usize);

impl CandidateId {
    pub const TRACED: CandidateId = CandidateId(0);
}

/// Where a candidate stands.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Not (yet) judged at every size.
    Open,
    /// Out of the run, for this reason (its module failed, a check refuted it, time ran out...).
    Dropped(String),
    /// Judged at every size, and not accepted at some.
    Rejected,
    /// Accepted at every size.
    Verified,
}

/// One candidate and what the stages found of it.
pub struct Entry {
    pub id: CandidateId,
    pub candidate: Candidate,
    /// Its module is loaded in the worker.
    pub staged: bool,
    pub status: Status,
    /// The exact check against the traced program, per plan variant.
    pub field: Vec<FieldReport>,
    /// Per size, in [`Size::ALL`]'s order.
    pub verdicts: [Option<Verdict>; 3],
    pub timings: [Option<Comparison>; 3],
    /// Generated kernels: the launch parameters picked on the device, per shape.
    pub launches: Vec<String>,
    /// A win under the run's objective.
    pub wins: bool,
    /// Per size: whether it runs the original `fn` there (a by-size candidate's sizes
    /// where nothing was faster).
    pub runs_original: [bool; 3],
    /// Per size where it runs the original: the seconds per call it spends choosing.
    pub dispatch: [Option<f64>; 3],
    /// Per size: the seconds its verification requests took (references the verifying worker
    /// computed for them included, waiting for the pool not).
    pub verify_s: [Option<f64>; 3],
    /// Per size: the seconds a warm worker's first call of it took ([`crate::warm`]).
    pub warm_s: [Option<f64>; 3],
    /// Timed in the bench's first look only: not among the finalists, so it may not win.
    pub first_look_only: bool,
    /// Its modelled cost on the run's device (once computed: a big program takes a second).
    pub modelled_cost: Option<f64>,
    /// Its place in verification order (0 first), once verification has ordered the run.
    pub verify_rank: Option<usize>,
    /// Dropped because the verification budget ran out (not because a check or a call
    /// failed): the sizes it was accepted at before may still run it ([`Entry::verified_at`]).
    pub ran_out: bool,
    /// Per size: why it was not verified there, screened as too slow to win there
    /// ([`crate::screen`]).
    pub outpaced: [Option<String>; 3],
    /// Out of the run because a screen left sizes out, every other size accepted (not
    /// because a check or a call failed): the sizes it was accepted at may still run it.
    pub screened: bool,
}

impl Entry {
    pub fn new(id: CandidateId, candidate: Candidate) -> Entry {
        Entry {
            id,
            candidate,
            staged: false,
            status: Status::Open,
            field: vec![],
            verdicts: Default::default(),
            timings: Default::default(),
            launches: vec![],
            wins: false,
            runs_original: [false; 3],
            dispatch: [None; 3],
            verify_s: [None; 3],
            warm_s: [None; 3],
            modelled_cost: None,
            verify_rank: None,
            first_look_only: false,
            ran_out: false,
            outpaced: Default::default(),
            screened: false,
        }
    }

    /// Its id in the worker.
    pub fn program(&self) -> ProgramId {
        ProgramId::Candidate(self.candidate.label())
    }

    /// Takes it out of the run; the first reason stays.
    pub fn drop_with(&mut self, why: String) {
        if !self.is_dropped() {
            self.status = Status::Dropped(why);
        }
    }

    /// Takes it out of the run because the verification budget ran out.
    pub fn out_of_time(&mut self, why: String) {
        if !self.is_dropped() {
            self.ran_out = true;
        }
        self.drop_with(why);
    }

    /// Accepted at `size`: verified at every size, or accepted there, and at every size
    /// judged, when the budget ran out or a screen left sizes out (it may then run there
    /// inside a by-size candidate, the original elsewhere). A size rejected anywhere rules
    /// out every size.
    pub fn verified_at(&self, size: Size) -> bool {
        let judged = || self.verdicts[size.index()].is_some() && self.verdicts.iter().flatten().all(|v| v.accepted);
        self.verified() || ((self.ran_out || self.screened) && judged())
    }

    /// Accepted at some size (see [`Entry::verified_at`]).
    pub fn verified_somewhere(&self) -> bool {
        Size::ALL.into_iter().any(|z| self.verified_at(z))
    }

    pub fn is_dropped(&self) -> bool {
        matches!(self.status, Status::Dropped(_))
    }

    pub fn dropped(&self) -> Option<&str> {
        match &self.status {
            Status::Dropped(why) => Some(why),
            _ => None,
        }
    }

    pub fn verified(&self) -> bool {
        self.status == Status::Verified
    }

    /// A verified as-traced entry `k` with these speedups at small, typical, large
    /// (noise-free samples): the stages' tests start from it.
    #[cfg(test)]
    pub fn verified_with(k: usize, speedups: [f64; 3]) -> Entry {
        let plan = Plan { variants: vec![], per_size_because: None };
        let mut e = Entry::new(CandidateId(k), superopt_search::as_traced(&plan));
        e.status = Status::Verified;
        e.timings = speedups.map(|x| Some(superopt_bench::compare(&[x; 8], &[1.0; 8])));
        e
    }

    /// Verified and timed in the bench's last look: it may win.
    pub fn contends(&self) -> bool {
        self.verified() && !self.first_look_only
    }

    /// Verified at `size` and timed in the bench's last look: it may run there inside a
    /// by-size candidate.
    pub fn contends_at(&self, size: Size) -> bool {
        self.verified_at(size) && !self.first_look_only
    }

    /// The timed sizes with their comparisons.
    pub fn timed(&self) -> Vec<(Size, Comparison)> {
        Size::ALL.iter().zip(&self.timings).filter_map(|(z, t)| t.clone().map(|t| (*z, t))).collect()
    }

    /// The geometric-mean speedup over the timed sizes.
    pub fn score(&self) -> f64 {
        geomean(self.timings.iter().flatten().map(|t| t.speedup))
    }
}

/// A whole run: what it was given, what it traced, and the ledger.
pub struct Run<'a> {
    pub config: &'a Config,
    pub session: Session,
    pub budget: Budget,
    /// `fn` as traced at each size.
    pub traces: Vec<Program>,
    /// The traces aligned into one program, or one per size.
    pub plan: Plan,
    pub device: Device,
    pub entries: Vec<Entry>,
    /// What the run left out, and why.
    pub notes: Vec<String>,
    pub seeds: Vec<u64>,
    /// The staged candidates' modules: a worker restarted later reloads them from here.
    pub workdir: tempfile::TempDir,
    /// The workers making candidates' first calls ahead of verification (none: no backend
    /// here reuses another process's compiled kernels).
    pub warm: Option<crate::warm::Warmers>,
    pub stages: Vec<Stage>,
    /// Median seconds per call of programs screened at a size ([`crate::screen`]).
    pub screens: BTreeMap<(ProgramId, Size), f64>,
    /// Candidates' modelled costs at a size, where the model was done in time
    /// ([`crate::screen::predicted`]).
    pub size_costs: BTreeMap<(CandidateId, Size), Option<f64>>,
    last_mark: Instant,
    progress: &'a dyn Fn(&str),
}

impl<'a> Run<'a> {
    pub fn new(
        config: &'a Config,
        session: Session,
        budget: Budget,
        traces: Vec<Program>,
        progress: &'a dyn Fn(&str),
    ) -> anyhow::Result<Run<'a>> {
        let mut plan = superopt_trace::align(&traces, 1);
        for (guard, _) in &mut plan.variants {
            guard.set_steps(&session.step_dims);
        }
        let seeds = (0..config.seeds).collect();
        let mut session = session;
        let workdir = tempfile::tempdir()?;
        crate::stage::keep_constants(&mut session, &traces, workdir.path())
            .map_err(|e| anyhow::anyhow!("saving the traced constants for the candidates failed: {e}"))?;
        let run = Run {
            config,
            session,
            budget,
            traces,
            plan,
            device: Device::default(),
            entries: vec![],
            notes: vec![],
            seeds,
            workdir,
            warm: None,
            stages: vec![],
            screens: BTreeMap::new(),
            size_costs: BTreeMap::new(),
            last_mark: Instant::now(),
            progress,
        };
        Ok(run)
    }

    /// Says what the run is doing now.
    pub fn say(&self, what: &str) {
        (self.progress)(what)
    }

    /// Ends stage `name`: its seconds go into the capsule.
    pub fn mark(&mut self, name: &str) {
        self.stages.push(Stage { name: name.into(), seconds: self.last_mark.elapsed().as_secs_f64() });
        self.last_mark = Instant::now();
    }

    /// Adds a candidate to the ledger.
    pub fn add(&mut self, c: Candidate) -> CandidateId {
        let id = CandidateId(self.entries.len());
        self.entries.push(Entry::new(id, c));
        id
    }

    pub fn entry(&self, id: CandidateId) -> &Entry {
        &self.entries[id.0]
    }

    pub fn entry_mut(&mut self, id: CandidateId) -> &mut Entry {
        &mut self.entries[id.0]
    }

    pub fn ids(&self) -> Vec<CandidateId> {
        self.entries.iter().map(|e| e.id).collect()
    }
}
