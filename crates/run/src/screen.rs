//! Verification's screen: before a candidate is verified at a size where verifying costs
//! seconds, it is timed briefly beside what it would have to beat there: the fastest of the
//! original `fn` and every candidate already verified at every size (each timed once per
//! size to know which), interleaved with it in one request. One at least [`OUTPACED`] times
//! slower than that cannot win there (the bench and the by-size choice take
//! the fastest verified program at each size), so it is not verified there, and its
//! verification time goes to candidates that can win. A screen never accepts anything.

use crate::ledger::{CandidateId, Run, Status};
use crate::verify::compiles_the_trace;
use std::time::{Duration, Instant};
use superopt_bench::Size;
use superopt_ir::Dtype;
use superopt_search::egraph::modelled;
use superopt_search::{cost_mode, Compile};
use superopt_worker::protocol::ProgramId;

/// How many times slower than a verified program a candidate must be, in a first timing
/// of a few samples, to be left unverified at that size (timing noise is tens of percent
/// at most, even on a shared machine).
pub const OUTPACED: f64 = 2.0;

/// The seconds the traced program's verification took at a size from which the screen
/// runs (below it, verifying costs about what timing does).
pub const SCREEN_FROM_S: f64 = 1.0;

/// How many times slower than a verified program the cost model must predict a candidate
/// to be at a size, for it not to be called there at all ([`predicted`]): a first timing's
/// noise on a loaded machine (8x seen on the CI machine) and the model's error within it.
pub const PREDICTED_OUTPACED: f64 = 20.0;

/// The least modelled cost, over that of the traced program compiled alike, of a candidate
/// [`predicted`] may leave out: one the model credits with a larger win rests the prediction
/// on that win's size, which the model may miss by a wide margin (an e-graph candidate's
/// reassociation, modelled 0.06x, timed 0.01x).
pub const PREDICTED_FROM_RATIO: f64 = 0.5;

/// Why `id` is not worth verifying at `size`, if it is not: a screen where verifying there
/// is costly. A timing that fails says nothing (verification then finds the fault).
pub fn screen(run: &mut Run, id: CandidateId, size: Size) -> Option<String> {
    let costly = run.entry(CandidateId::TRACED).verify_s[size.index()].is_some_and(|s| s >= SCREEN_FROM_S);
    if id == CandidateId::TRACED || !costly {
        return None;
    }
    let rivals = rivals(run, id);
    let me = run.entry(id).program();
    run.say(&format!("screening {} at {size}", run.entry(id).candidate.label()));
    let (name, best) = fastest(run, &rivals, size)?;
    // The candidate beside the fastest, interleaved in one request: both see the same machine.
    let medians = run.session.screen(&[best.clone(), me.clone()], size).ok()?;
    let timed = [(name, *medians.get(&best)?)];
    let mine = *medians.get(&me)?;
    outpaced(mine, &timed).map(|why| format!("at {size}: not verified: {why}"))
}

/// Why `id` is not worth calling at `size`, if it is not: the cost model, scaled by the
/// measured time of the traced program compiled as `id` is (`compile`, or the trace as it
/// is), predicts it [`PREDICTED_OUTPACED`] times slower than a program verified at every
/// size, and credits it with no large win over that program ([`PREDICTED_FROM_RATIO`]).
/// Both are modelled at that size's program, and only where the model is done with each
/// within a second (past it the model prices launches, not the program). Its first call,
/// which compiles its kernels (51 s for a compiled unrolled loop on an H100), is then not
/// made by the verifier, nor by a warm worker that has not started it: gated_delta's
/// candidates without kernels ran out of the budget behind a verified 170x kernel. Not for
/// candidates with generated kernels, whose gain the model does not see.
pub fn predicted(run: &mut Run, id: CandidateId, size: Size) -> Option<String> {
    let e = run.entry(id);
    if id == CandidateId::TRACED || e.candidate.kernels || compiles_the_trace(&e.candidate) {
        return None;
    }
    let eager = e.candidate.compile == Compile::Eager;
    let like =
        run.entries
            .iter()
            .find(|s| if eager { s.id == CandidateId::TRACED } else { compiles_the_trace(&s.candidate) })?;
    if like.status != Status::Verified {
        return None;
    }
    let (like_id, like_name, like_program) = (like.id, like.candidate.label(), like.program());
    let rivals = rivals(run, id);
    let (name, best) = fastest(run, &rivals, size)?;
    let (best_s, like_s) = (*run.screens.get(&(best, size))?, *run.screens.get(&(like_program, size))?);
    // The model is asked only where a ratio of at most 2 could predict it out.
    predicted_outpaced(like_s * 2.0, best_s)?;
    let ratio = size_cost(run, id, size)? / size_cost(run, like_id, size)?;
    if ratio < PREDICTED_FROM_RATIO {
        return None;
    }
    predicted_outpaced(like_s * ratio, best_s).map(|times| {
        format!(
            "at {size}: not verified: modelled {ratio:.2}x of {like_name} ({:.3} ms), {times:.0}x slower than \
             {name} ({:.3} ms): it cannot win there",
            like_s * 1e3,
            best_s * 1e3
        )
    })
}

/// The modelled cost of `id`'s program at `size` (the plan's variant that admits that
/// size's inputs), kept in [`Run::size_costs`]; None where the model is not done with it
/// within a second.
fn size_cost(run: &mut Run, id: CandidateId, size: Size) -> Option<f64> {
    if let Some(known) = run.size_costs.get(&(id, size)) {
        return *known;
    }
    let t = &run.traces[size.index()];
    let shapes: Vec<(Vec<i64>, Dtype)> =
        t.inputs.iter().map(|i| (t.value(*i).shape.clone(), t.value(*i).dtype)).collect();
    let c = &run.entry(id).candidate;
    let deadline = Instant::now() + Duration::from_secs(1);
    let variant = c.plan.variants.iter().find(|(guard, _)| guard.admits(&shapes));
    let cost = variant.and_then(|(guard, p)| modelled(p, guard, &run.device, cost_mode(c.compile), deadline));
    run.size_costs.insert((id, size), cost);
    cost
}

/// How many times slower than `best` a program predicted to take `predicted` seconds is,
/// where that is at least [`PREDICTED_OUTPACED`].
fn predicted_outpaced(predicted: f64, best: f64) -> Option<f64> {
    (predicted >= PREDICTED_OUTPACED * best).then(|| predicted / best)
}

/// What `id` would have to beat: the original `fn`, and every other candidate verified at
/// every size (the bench and the by-size choice take the fastest verified program).
fn rivals(run: &Run, id: CandidateId) -> Vec<(String, ProgramId)> {
    let verified = run.entries.iter().filter(|e| e.id != id && e.status == Status::Verified);
    std::iter::once(("the original".to_string(), ProgramId::Original))
        .chain(verified.map(|e| (e.candidate.label(), e.program())))
        .collect()
}

/// The fastest of `rivals` at `size`, each timed once there (kept in [`Run::screens`]).
fn fastest(run: &mut Run, rivals: &[(String, ProgramId)], size: Size) -> Option<(String, ProgramId)> {
    let unmeasured: Vec<ProgramId> =
        rivals.iter().map(|(_, p)| p.clone()).filter(|p| !run.screens.contains_key(&(p.clone(), size))).collect();
    if !unmeasured.is_empty() {
        let medians = run.session.screen(&unmeasured, size).ok()?;
        run.screens.extend(medians.into_iter().map(|(p, t)| ((p, size), t)));
    }
    let seconds = |p: &ProgramId| run.screens.get(&(p.clone(), size)).copied().unwrap_or(f64::INFINITY);
    rivals.iter().min_by(|a, b| seconds(&a.1).total_cmp(&seconds(&b.1))).cloned()
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
    fn a_candidate_modelled_twenty_times_slower_than_a_verified_one_is_not_called() {
        let times = predicted_outpaced(0.0104, 0.0001).expect("gated_delta's compile against its kernel");
        assert!((times - 104.0).abs() < 1e-9, "{times}");
        assert!(predicted_outpaced(0.002, 0.0001).is_some(), "twenty times: out");
        assert_eq!(predicted_outpaced(0.0019, 0.0001), None, "19x: noise and the model could be that far off");
        assert_eq!(predicted_outpaced(0.008, 0.003), None, "the chunked rule's compile against its kernel");
    }

    #[test]
    fn a_candidate_within_twice_the_fastest_is_verified() {
        assert_eq!(outpaced(0.0039, &rivals()), None, "1.95x: noise could hide a win");
        assert_eq!(outpaced(0.001, &rivals()), None, "faster than every rival");
        assert_eq!(outpaced(9.0, &[]), None, "nothing to compare with");
    }
}
