//! Each stage's share of `--time-budget`, in one place.

use std::time::{Duration, Instant};

/// The run's time budget, from when the run started.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub start: Instant,
    pub total: Duration,
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
    /// Of what is left for a by-size candidate, its verification's share (timing the rest).
    pub const BY_SIZE_VERIFY: f64 = 2.0 / 3.0;
    /// Of what the second timing look may take, the share kept for a by-size candidate
    /// where one is likely (verified and timed after the others, it would otherwise get
    /// what they leave: seconds at most).
    pub const BY_SIZE: f64 = 1.0 / 3.0;
    /// Of the timing budget, the first look's share (every verified candidate).
    pub const FIRST_LOOK: f64 = 0.4;

    pub fn start(total: Duration) -> Budget {
        Budget { start: Instant::now(), total }
    }

    fn at(&self, share: f64) -> Instant {
        self.start + self.total.mul_f64(share)
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
        self.total.saturating_sub(self.start.elapsed() + Self::RESERVE)
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
}
