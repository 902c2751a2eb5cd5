//! The JSON repro capsule: everything needed to judge and repeat a run.

use serde::Serialize;
use superopt_bench::Comparison;
use superopt_verify::field::FieldReport;
use superopt_verify::Verdict;

/// The float64 references of one size: how long they took, for how much work.
#[derive(Debug, Serialize)]
pub struct References {
    pub size: superopt_bench::Size,
    pub seconds: f64,
    /// Verification cases (seeds and edge inputs), each with its own reference.
    pub cases: usize,
    /// The traced program's floating-point work over all cases.
    pub gflop: f64,
    /// Where they ran: on the GPU (where it computes them as the CPU does) or the CPU.
    pub device: superopt_bench::DeviceKind,
    /// The worker processes that computed them (on the CPU, one core each).
    pub workers: usize,
}

#[derive(Debug, Serialize)]
pub struct Stage {
    pub name: String,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct SizeReport {
    pub size: superopt_bench::Size,
    /// The array inputs' shapes at this size.
    pub shapes: Vec<Vec<i64>>,
    pub verdict: Option<Verdict>,
    pub timing: Option<Comparison>,
    /// The roofline floor over this candidate's median time at this size.
    pub roofline: Option<f64>,
    /// It runs the original `fn` at this size (a by-size candidate's sizes where nothing
    /// else was faster).
    pub runs_original: bool,
    /// Where it runs the original: the seconds per call it spends choosing first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dispatch_s: Option<f64>,
    /// The seconds its verification at this size took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_s: Option<f64>,
    /// The seconds a warm worker's first call of it at this size took (its kernels' compiles).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_s: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct CandidateReport {
    /// Its label ([`superopt_search::Candidate::label`]).
    pub name: String,
    pub source: superopt_search::Source,
    pub rules: Vec<String>,
    /// Each rewrite against the traced value it replaced (e-graph candidates).
    pub explain: Vec<String>,
    pub compiled: bool,
    pub nodes: usize,
    pub sizes: Vec<SizeReport>,
    /// Accepted at every size.
    pub verified: bool,
    /// A win under the run's objective.
    pub wins: bool,
    /// Why it was dropped, if it was.
    pub dropped: Option<String>,
    /// Timed in the bench's first look only (not a finalist): it could not win.
    pub first_look_only: bool,
    /// Its place in verification order (0 first; none where verification did not run).
    pub verify_rank: Option<usize>,
    /// The exact check against the program as traced, per plan variant.
    pub field: Vec<FieldReport>,
    /// Generated kernels: the launch parameters picked on the device, per shape.
    pub launches: Vec<String>,
    /// The same kernels' Metal source, from the same kernel IR: not verified on this device.
    pub metal: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Capsule {
    pub tool: String,
    pub version: String,
    pub mlx: String,
    pub python: String,
    pub device: String,
    pub harness: String,
    pub harness_sha256: String,
    pub objective: String,
    pub tolerance: String,
    pub seeds: Vec<u64>,
    /// "one program for all sizes", or why there is one per size.
    pub shapes: String,
    pub candidates: Vec<CandidateReport>,
    /// The winner's label.
    pub winner: Option<String>,
    /// The winner's place in `candidates`.
    #[serde(skip)]
    pub winner_at: Option<usize>,
    pub decision: String,
    pub output: Option<String>,
    pub stages: Vec<Stage>,
    /// The device's measured ceilings and each size's floor.
    pub ceilings: Option<crate::roofline::Ceilings>,
    pub floors: Vec<crate::roofline::Floor>,
    /// Per size, the float64 references' time and work.
    pub references: Vec<References>,
    /// What the run left out, and why (e.g. kernels on a device that cannot run them).
    pub notes: Vec<String>,
}

impl Capsule {
    /// The capsule of a run that ended before any candidate: the original stays, for `why`.
    pub fn no_change(harness: &str, why: &str) -> Capsule {
        Capsule {
            tool: "superopt".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            harness: harness.into(),
            decision: format!("no change: {why}; the original is unchanged"),
            ..Capsule::default()
        }
    }
}
