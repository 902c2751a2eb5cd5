//! Where the fastest verified candidate differs between sizes, one more candidate runs
//! each at its sizes (`by-size`): emitted, verified and timed like every other.

use crate::pipeline::{bench, candidate_report, score, stage_candidate, verify_candidate};
use crate::session::{Session, SIZES};
use indicatif::ProgressBar;
use std::path::Path;
use std::time::{Duration, Instant};
use superopt_report::CandidateReport;
use superopt_search::{by_size, Candidate, SizeRange};
use superopt_verify::Tolerance;

/// What a by-size round needs besides the candidates.
pub struct Round<'a> {
    pub traces: &'a [superopt_ir::Program],
    pub dir: &'a Path,
    pub seeds: &'a [u64],
    pub tol: Tolerance,
    /// When the run's budget ends.
    pub end: Instant,
}

/// The elements of a trace's array inputs, taken together.
fn input_elements(p: &superopt_ir::Program) -> i64 {
    p.inputs.iter().map(|i| p.value(*i).numel()).sum()
}

/// Halfway between two sizes, geometrically.
fn midpoint(a: i64, b: i64) -> i64 {
    ((a as f64) * (b as f64)).sqrt().round() as i64
}

/// The verified candidate with the best significant speedup at each size, if every size has one.
fn best_per_size(reports: &[CandidateReport]) -> Option<Vec<usize>> {
    (0..SIZES.len())
        .map(|z| {
            (0..reports.len())
                .filter(|k| reports[*k].verified && reports[*k].dropped.is_none())
                .filter_map(|k| reports[k].sizes[z].timing.as_ref().filter(|t| t.significant).map(|t| (k, t.speedup)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(k, _)| k)
        })
        .collect()
}

/// The parts of a by-size candidate: runs of sizes with the same best candidate, each
/// reaching halfway to the next size. None where one candidate is best everywhere.
pub fn split(best: &[usize], elements: &[i64]) -> Option<Vec<(SizeRange, usize)>> {
    if best.iter().all(|k| *k == best[0]) || !elements.windows(2).all(|w| w[0] < w[1]) {
        return None;
    }
    let mut parts = vec![];
    let mut z = 0;
    while z < best.len() {
        let end = (z..best.len()).take_while(|e| best[*e] == best[z]).last().unwrap();
        let above = (z > 0).then(|| midpoint(elements[z - 1], elements[z]));
        let upto = (end + 1 < best.len()).then(|| midpoint(elements[end], elements[end + 1]));
        parts.push((SizeRange { above, upto }, best[z]));
        z = end + 1;
    }
    Some(parts)
}

/// Adds, verifies and times a by-size candidate where it could beat `winner`; returns a
/// note where it was not tried for want of time.
pub fn try_by_size(s: &mut Session, candidates: &mut Vec<Candidate>, reports: &mut Vec<CandidateReport>, winner: Option<usize>, r: &Round, progress: &ProgressBar) -> Option<String> {
    let best = best_per_size(reports)?;
    let elements: Vec<i64> = r.traces.iter().map(input_elements).collect();
    let parts = split(&best, &elements)?;
    // Each size at its best candidate's speedup, roughly; not worth a round unless it beats the winner.
    let expected = superopt_bench::geomean(best.iter().enumerate().map(|(z, k)| reports[*k].sizes[z].timing.as_ref().unwrap().speedup));
    if winner.is_some_and(|w| expected <= score(&reports[w]) * superopt_bench::MIN_SPEEDUP) {
        return None;
    }
    let left = r.end.saturating_duration_since(Instant::now());
    if left < Duration::from_secs(2) {
        return Some("a by-size candidate was not tried: the time budget ran out".into());
    }
    let k = candidates.len();
    candidates.push(by_size(parts.iter().map(|(range, j)| (*range, candidates[*j].clone())).collect()));
    let mut report = candidate_report(&candidates[k], r.traces);
    for (_, j) in &parts {
        report.field.extend(reports[*j].field.iter().cloned());
        report.launches.extend(reports[*j].launches.iter().cloned());
    }
    reports.push(report);
    progress.set_message("verifying by-size");
    if let Err(why) = stage_candidate(s, &candidates[k], k, r.dir) {
        reports[k].dropped = Some(why);
        return None;
    }
    // Verification may take two thirds of what is left; timing the rest.
    verify_candidate(s, &mut reports[k], r.seeds, r.tol, Instant::now() + left.mul_f64(2.0 / 3.0));
    if reports[k].verified && reports[k].dropped.is_none() {
        let left = r.end.saturating_duration_since(Instant::now());
        if let Err(e) = bench(s, candidates, reports, &[k], left, progress) {
            reports[k].dropped = Some(format!("timing failed: {e}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_best_candidate_everywhere_is_no_split() {
        assert_eq!(split(&[2, 2, 2], &[10, 100, 1000]), None);
    }

    #[test]
    fn sizes_meet_halfway_between_parts() {
        let parts = split(&[1, 3, 3], &[100, 10_000, 1_000_000]).unwrap();
        assert_eq!(parts, vec![(SizeRange { above: None, upto: Some(1000) }, 1), (SizeRange { above: Some(1000), upto: None }, 3)]);
        let parts = split(&[1, 3, 1], &[100, 10_000, 1_000_000]).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1].0, SizeRange { above: Some(1000), upto: Some(100_000) });
        assert!(parts[1].0.admits(10_000) && !parts[1].0.admits(100) && !parts[1].0.admits(1_000_000));
    }

    /// A report with the given speedups at small, typical, large (noise-free samples).
    fn report(verified: bool, speedups: [f64; 3]) -> CandidateReport {
        let sizes = SIZES
            .iter()
            .zip(speedups)
            .map(|(z, x)| superopt_report::SizeReport { size: z.to_string(), shapes: vec![], verdict: None, timing: Some(superopt_bench::compare(&[x; 8], &[1.0; 8])), roofline: None })
            .collect();
        CandidateReport { name: String::new(), rules: vec![], explain: vec![], compiled: false, nodes: 0, sizes, verified, wins: false, dropped: None, field: vec![], launches: vec![], metal: None }
    }

    #[test]
    fn the_best_verified_significant_speedup_wins_each_size() {
        let reports = [report(true, [3.0, 1.2, 1.1]), report(true, [1.5, 2.0, 4.0]), report(false, [9.0, 9.0, 9.0])];
        assert_eq!(best_per_size(&reports), Some(vec![0, 1, 1]));
        // A size where no candidate is significantly faster leaves nothing to split.
        let reports = [report(true, [3.0, 1.01, 1.1]), report(true, [1.5, 1.0, 4.0])];
        assert_eq!(best_per_size(&reports), None);
    }

    #[test]
    fn sizes_that_do_not_grow_are_no_split() {
        assert_eq!(split(&[1, 3, 3], &[100, 100, 1000]), None);
    }
}
