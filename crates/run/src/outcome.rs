//! What a run ends with.

use crate::session::Session;
use std::time::Instant;
use superopt_report::{Capsule, Stage};
use superopt_search::Candidate;

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
    pub(crate) fn new(
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
