//! Verification's screen: before a candidate is verified at a size where verifying costs
//! seconds, it is timed briefly beside what it would have to beat there: the fastest of the
//! original `fn` and every candidate already verified at every size (each timed once per
//! size to know which), interleaved with it in one request. One at least [`OUTPACED`] times
//! slower than that cannot win there (the bench and the by-size choice take
//! the fastest verified program at each size), so it is not verified there, and its
//! verification time goes to candidates that can win. A screen never accepts anything.

use crate::ledger::{CandidateId, Run, Status};
use superopt_bench::Size;
use superopt_worker::protocol::ProgramId;

/// How many times slower than a verified program a candidate must be, in a first timing
/// of a few samples, to be left unverified at that size (timing noise is tens of percent
/// at most, even on a shared machine).
pub const OUTPACED: f64 = 2.0;

/// The seconds the traced program's verification took at a size from which the screen
/// runs (below it, verifying costs about what timing does).
pub const SCREEN_FROM_S: f64 = 1.0;

/// Why `id` is not worth verifying at `size`, if it is not: a screen where verifying there
/// is costly. A timing that fails says nothing (verification then finds the fault).
pub fn screen(run: &mut Run, id: CandidateId, size: Size) -> Option<String> {
    let costly = run.entry(CandidateId::TRACED).verify_s[size.index()].is_some_and(|s| s >= SCREEN_FROM_S);
    if id == CandidateId::TRACED || !costly {
        return None;
    }
    let rivals: Vec<(String, ProgramId)> = std::iter::once(("the original".to_string(), ProgramId::Original))
        .chain(
            run.entries
                .iter()
                .filter(|e| e.id != id && e.status == Status::Verified)
                .map(|e| (e.candidate.label(), e.program())),
        )
        .collect();
    let me = run.entry(id).program();
    // The rivals timed once each at this size, to know the fastest.
    let unmeasured: Vec<ProgramId> =
        rivals.iter().map(|(_, p)| p.clone()).filter(|p| !run.screens.contains_key(&(p.clone(), size))).collect();
    run.say(&format!("screening {} at {size}", run.entry(id).candidate.label()));
    if !unmeasured.is_empty() {
        let medians = run.session.screen(&unmeasured, size).ok()?;
        run.screens.extend(medians.into_iter().map(|(p, t)| ((p, size), t)));
    }
    let fastest = |(_, p): &&(String, ProgramId)| run.screens.get(&(p.clone(), size)).copied().unwrap_or(f64::INFINITY);
    let (name, best) = rivals.iter().min_by(|a, b| fastest(a).total_cmp(&fastest(b)))?.clone();
    // Then the candidate beside it, interleaved in one request: both see the same machine.
    let medians = run.session.screen(&[best.clone(), me.clone()], size).ok()?;
    let timed = [(name, *medians.get(&best)?)];
    let mine = *medians.get(&me)?;
    outpaced(mine, &timed).map(|why| format!("at {size}: not verified: {why}"))
}

/// Why a candidate taking `mine` seconds per call cannot win beside `rivals` (name,
/// seconds per call), if it cannot.
pub fn outpaced(mine: f64, rivals: &[(String, f64)]) -> Option<String> {
    let (name, best) = rivals.iter().min_by(|a, b| a.1.total_cmp(&b.1))?;
    (mine >= OUTPACED * best).then(|| {
        let ms = |s: f64| s * 1e3;
        format!(
            "{:.1}x slower than {name} in a first timing ({:.3} ms against {:.3} ms): it cannot win there",
            mine / best,
            ms(mine),
            ms(*best)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rivals() -> Vec<(String, f64)> {
        vec![("the original".into(), 0.40), ("egraph+kernels".into(), 0.002)]
    }

    #[test]
    fn a_candidate_twice_as_slow_as_a_verified_one_is_outpaced() {
        let why = outpaced(0.39, &rivals()).expect("195x slower than the kernels");
        assert_eq!(
            why,
            "195.0x slower than egraph+kernels in a first timing (390.000 ms against 2.000 ms): it cannot win there"
        );
        assert!(outpaced(0.004, &rivals()).is_some(), "exactly twice: out");
    }

    #[test]
    fn a_candidate_within_twice_the_fastest_is_verified() {
        assert_eq!(outpaced(0.0039, &rivals()), None, "1.95x: noise could hide a win");
        assert_eq!(outpaced(0.001, &rivals()), None, "faster than every rival");
        assert_eq!(outpaced(9.0, &[]), None, "nothing to compare with");
    }
}
