//! What a run is asked to do.

use std::time::Duration;
use superopt_bench::Objective;
use superopt_verify::Tolerance;

use crate::session::SessionConfig;

/// The flags of a run.
#[derive(Clone, Debug)]
pub struct Config {
    pub session: SessionConfig,
    pub objective: Objective,
    pub tolerance: Tolerance,
    pub time_budget: Duration,
    /// Seeds per size for verification.
    pub seeds: u64,
}
