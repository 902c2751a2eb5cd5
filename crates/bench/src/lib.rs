//! Benchmark statistics and the speedup decision.
//!
//! Samples of the baseline and a candidate are taken interleaved, round by round,
//! so each round gives one paired ratio. A speedup counts only when the ratio of
//! medians is at least [`MIN_SPEEDUP`] and three quarters of the paired ratios
//! exceed 1.

use serde::Serialize;
pub use superopt_worker::protocol::{DeviceKind, Size};

/// Inside +/-3% is not a speedup.
pub const MIN_SPEEDUP: f64 = 1.03;
/// Sampling stops once sigma/mu is under this for every program.
pub const TARGET_CV: f64 = 0.05;

pub fn median(xs: &[f64]) -> f64 {
    quantile(xs, 0.5)
}

/// Linear-interpolated quantile; NaN for no samples.
pub fn quantile(xs: &[f64], q: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// sigma/mu.
pub fn cv(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mu = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    var.sqrt() / mu
}

/// One program's timing at one size.
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    /// Seconds per call.
    pub median: f64,
    /// Half the interquartile range, relative to the median.
    pub spread: f64,
    pub samples: usize,
}

impl Timing {
    pub fn of(xs: &[f64]) -> Timing {
        let m = median(xs);
        Timing { median: m, spread: (quantile(xs, 0.75) - quantile(xs, 0.25)) / 2.0 / m, samples: xs.len() }
    }
}

/// A candidate against the baseline at one size.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub baseline: Timing,
    pub candidate: Timing,
    /// baseline median / candidate median.
    pub speedup: f64,
    /// Half the interquartile range of the paired ratios.
    pub speedup_spread: f64,
    pub significant: bool,
    /// Slower by the same margin, with three quarters of the paired ratios below 1.
    pub slower: bool,
}

/// Compares paired, interleaved samples.
pub fn compare(baseline: &[f64], candidate: &[f64]) -> Comparison {
    let ratios: Vec<f64> = baseline.iter().zip(candidate).map(|(b, c)| b / c).collect();
    let speedup = median(baseline) / median(candidate);
    let wins = ratios.iter().filter(|r| **r > 1.0).count() as f64 / ratios.len().max(1) as f64;
    Comparison {
        baseline: Timing::of(baseline),
        candidate: Timing::of(candidate),
        speedup,
        speedup_spread: (quantile(&ratios, 0.75) - quantile(&ratios, 0.25)) / 2.0,
        significant: speedup >= MIN_SPEEDUP && wins >= 0.75,
        slower: speedup <= 1.0 / MIN_SPEEDUP && wins <= 0.25,
    }
}

/// Which sizes must be faster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Faster at every size.
    All,
    /// Faster at "typical", and not slower elsewhere.
    Typical,
    /// Geometric-mean speedup over the sizes, and not slower anywhere.
    Geomean,
}

/// Whether `per_size` (size label, comparison) is a win under `objective`.
pub fn is_win(objective: Objective, per_size: &[(Size, Comparison)]) -> bool {
    if per_size.is_empty() {
        return false;
    }
    let not_slower = per_size.iter().all(|(_, c)| c.speedup >= 1.0 / MIN_SPEEDUP);
    match objective {
        Objective::All => per_size.iter().all(|(_, c)| c.significant),
        Objective::Typical => not_slower && per_size.iter().any(|(s, c)| *s == Size::Typical && c.significant),
        Objective::Geomean => {
            let g = geomean(per_size.iter().map(|(_, c)| c.speedup));
            not_slower
                && g >= MIN_SPEEDUP
                && per_size.iter().filter(|(_, c)| c.speedup > 1.0).count() * 2 > per_size.len()
        }
    }
}

pub fn geomean(xs: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x.ln(), n + 1));
    (sum / n.max(1) as f64).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(base: f64, n: usize) -> Vec<f64> {
        (0..n).map(|i| base * (1.0 + 0.01 * ((i * 7 % 5) as f64 - 2.0))).collect()
    }

    #[test]
    fn quantiles_and_cv() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.25), 1.75);
        assert!(cv(&[1.0, 1.0, 1.0]) == 0.0);
        assert!(cv(&noisy(1.0, 20)) < TARGET_CV);
    }

    #[test]
    fn two_percent_is_not_a_speedup() {
        let c = compare(&noisy(1.02, 20), &noisy(1.0, 20));
        assert!(!c.significant, "{c:?}");
        let c = compare(&noisy(1.5, 20), &noisy(1.0, 20));
        assert!(c.significant);
        assert!((c.speedup - 1.5).abs() < 0.05);
    }

    #[test]
    fn objective_all_needs_every_size() {
        let win = compare(&noisy(2.0, 10), &noisy(1.0, 10));
        let tie = compare(&noisy(1.0, 10), &noisy(1.0, 10));
        let sizes = vec![(Size::Small, tie.clone()), (Size::Typical, win.clone())];
        assert!(!is_win(Objective::All, &sizes));
        assert!(is_win(Objective::Typical, &sizes));
        let lose = compare(&noisy(1.0, 10), &noisy(2.0, 10));
        assert!(!is_win(Objective::Typical, &[(Size::Small, lose), (Size::Typical, win)]));
    }
}
