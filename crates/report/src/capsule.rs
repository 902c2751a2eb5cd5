//! The JSON repro capsule: everything needed to judge and repeat a run.

use serde::Serialize;
use superopt_bench::Comparison;
use superopt_verify::field::FieldReport;
use superopt_verify::Verdict;

#[derive(Debug, Serialize)]
pub struct Stage {
    pub name: String,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct SizeReport {
    pub size: String,
    /// The array inputs' shapes at this size.
    pub shapes: Vec<Vec<i64>>,
    pub verdict: Option<Verdict>,
    pub timing: Option<Comparison>,
}

#[derive(Debug, Serialize)]
pub struct CandidateReport {
    pub name: String,
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
    /// The exact check against the program as traced, per plan variant.
    pub field: Vec<FieldReport>,
}

#[derive(Debug, Serialize)]
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
    pub winner: Option<String>,
    pub decision: String,
    pub output: Option<String>,
    pub stages: Vec<Stage>,
}
