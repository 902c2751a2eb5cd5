//! Each stage's share of `--time-budget`, in one place. The budget counts from the trace's
//! end ([`Budget::restart`]): loading the harness and tracing `fn` (MLX building fn's own
//! kernels on a fresh device: a minute for a quantized MoE block) cost what fn costs, the
//! same for every run, and are said in the capsule's stages. Time verification spends waiting
//! for the float64 references (no candidate has a case ready) is not counted, up to
//! [`Budget::MAX_WAIT`] of the budget: references cost what the work costs, and a run that
//! cut them short would drop its candidates unchecked.

use std::time::{Duration, Instant};

/// The run's time budget, from when the trace ended.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub start: Instant,
    pub total: Duration,
    /// Time spent waiting for references, not counted (at most `total * MAX_WAIT`).
    pub waited: Duration,
}

impl Budget {
    /// Saturation: a fifth of the budget, at most a minute.
    const SEARCH: f64 = 0.2;
    const SEARCH_MAX: Duration = Duration::from_secs(60);
    /// Tuning ends at a quarter of the budget; untuned launches keep default parameters.
    const TUNE: f64 = 0.25;
    /// The exact check is an extra: past two fifths it is left to the float check.
    const FIELD: f64 = 0.4;
    /// Verification may run to four fifths; timing needs the rest.
    const VERIFY: f64 = 0.8;
    /// Kept back from timing for deciding and reporting.
    const RESERVE: Duration = Duration::from_secs(3);
    /// Of what the second timing look may take, the share kept for a by-size candidate
    /// where one is likely (verified and timed after the others, it would otherwise get
    /// what they leave: seconds at most).
    pub const BY_SIZE: f64 = 1.0 / 3.0;
    /// Of the timing budget, the first look's share (every verified candidate).
    pub const FIRST_LOOK: f64 = 0.4;
    /// Waiting for references may add at most this share of the budget.
    pub const MAX_WAIT: f64 = 1.0;

    pub fn start(total: Duration) -> Budget {
        Budget { start: Instant::now(), total, waited: Duration::ZERO }
    }

    /// Starts the clock again, at the trace's end.
    pub fn restart(&mut self) {
        self.start = Instant::now();
    }

    /// The latest a worker started now, before the trace, may need to work: the latest the
    /// verification can end once the budget restarts, the trace taking at most `trace`.
    pub fn last_deadline_before_trace(&self, trace: Duration) -> Instant {
        Instant::now() + trace + self.total.mul_f64(Self::VERIFY + Self::MAX_WAIT)
    }

    fn at(&self, share: f64) -> Instant {
        self.start + self.waited + self.total.mul_f64(share)
    }

    /// Leaves `d`, spent waiting for references, out of the budget (up to [`Self::MAX_WAIT`]).
    pub fn waited_for_references(&mut self, d: Duration) {
        self.waited = (self.waited + d).min(self.total.mul_f64(Self::MAX_WAIT));
    }

    /// The latest the verification deadline can be, however long it waits: the pool's.
    pub fn last_verify_deadline(&self) -> Instant {
        self.start + self.total.mul_f64(Self::VERIFY + Self::MAX_WAIT)
    }

    pub fn search_time(&self) -> Duration {
        self.total.mul_f64(Self::SEARCH).min(Self::SEARCH_MAX)
    }

    pub fn tune_deadline(&self) -> Instant {
        self.at(Self::TUNE)
    }

    pub fn field_deadline(&self) -> Instant {
        self.at(Self::FIELD)
    }

    pub fn verify_deadline(&self) -> Instant {
        self.at(Self::VERIFY)
    }

    /// What timing may take: what is left but the reserve.
    pub fn bench_time(&self) -> Duration {
        (self.total + self.waited).saturating_sub(self.start.elapsed() + Self::RESERVE)
    }

    /// When the whole budget ends.
    pub fn end(&self) -> Instant {
        self.at(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shares_come_in_stage_order() {
        let b = Budget::start(Duration::from_secs(100));
        assert_eq!(b.search_time(), Duration::from_secs(20));
        assert!(
            b.tune_deadline() < b.field_deadline()
                && b.field_deadline() < b.verify_deadline()
                && b.verify_deadline() < b.end()
        );
        assert!(b.bench_time() <= Duration::from_secs(97));
        assert_eq!(Budget::start(Duration::from_secs(1000)).search_time(), Duration::from_secs(60));
    }

    #[test]
    fn waiting_for_references_moves_the_deadlines_up_to_a_budget() {
        let mut b = Budget::start(Duration::from_secs(100));
        let (verify, end) = (b.verify_deadline(), b.end());
        b.waited_for_references(Duration::from_secs(30));
        assert_eq!(b.verify_deadline() - verify, Duration::from_secs(30));
        assert_eq!(b.end() - end, Duration::from_secs(30));
        assert!(b.bench_time() > Duration::from_secs(120));
        b.waited_for_references(Duration::from_secs(500));
        assert_eq!(b.waited, Duration::from_secs(100));
        assert_eq!(b.verify_deadline(), b.last_verify_deadline());
    }

    #[test]
    fn a_restart_moves_every_deadline_and_workers_before_the_trace_outlive_them() {
        let mut b = Budget::start(Duration::from_secs(100));
        let ahead = b.last_deadline_before_trace(Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
        let end = b.end();
        b.restart();
        assert!(b.end() > end, "the trace's time is not counted");
        assert!(ahead >= b.last_verify_deadline() + Duration::from_secs(59));
    }
}
