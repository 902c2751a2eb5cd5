//! Stage 8: where the fastest verified candidate differs between sizes, one more
//! candidate runs each at its sizes (`by-size`): emitted and timed like every other, and
//! checked to return at each size what the part verified there returns.

use crate::ledger::{Entry, Run};
use crate::stage::stage;
use std::time::{Duration, Instant};
use superopt_bench::Size;
use superopt_search::{by_size as combine, SizeRange};

/// The elements of a trace's array inputs, taken together.
fn input_elements(p: &superopt_ir::Program) -> i64 {
    p.inputs.iter().map(|i| p.value(*i).numel()).sum()
}

/// Halfway between two sizes, geometrically.
fn midpoint(a: i64, b: i64) -> i64 {
    ((a as f64) * (b as f64)).sqrt().round() as i64
}

/// The verified candidate with the best significant speedup at each size; `None` where
/// none is significantly faster there (the original runs there).
fn best_per_size(entries: &[Entry]) -> Vec<Option<usize>> {
    Size::ALL
        .into_iter()
        .map(|size| {
            let z = size.index();
            let timed = entries.iter().filter(|e| e.contends_at(size));
            let significant =
                timed.filter_map(|e| e.timings[z].as_ref().filter(|t| t.significant).map(|t| (e.id.0, t.speedup)));
            significant.max_by(|a, b| a.1.total_cmp(&b.1)).map(|(k, _)| k)
        })
        .collect()
}

/// The parts of a by-size candidate: runs of sizes with the same best candidate, each
/// reaching halfway to the next size; sizes with none are left to the original. None where
/// one candidate is best everywhere, or none anywhere.
pub fn split(best: &[Option<usize>], elements: &[i64]) -> Option<Vec<(SizeRange, usize)>> {
    if best.iter().all(|k| *k == best[0]) || !elements.windows(2).all(|w| w[0] < w[1]) {
        return None;
    }
    let mut parts = vec![];
    let mut z = 0;
    while z < best.len() {
        let end = (z..best.len()).take_while(|e| best[*e] == best[z]).last().unwrap();
        if let Some(k) = best[z] {
            let above = (z > 0).then(|| midpoint(elements[z - 1], elements[z]));
            let upto = (end + 1 < best.len()).then(|| midpoint(elements[end], elements[end + 1]));
            parts.push((SizeRange { above, upto }, k));
        }
        z = end + 1;
    }
    Some(parts)
}

/// Whether the contenders' timings so far make a by-size candidate (different candidates
/// fastest at different sizes, or the original at some).
pub fn likely(run: &Run) -> bool {
    let elements: Vec<i64> = run.traces.iter().map(input_elements).collect();
    split(&best_per_size(&run.entries), &elements).is_some()
}

/// Adds, verifies and times a by-size candidate where it could beat `winner`; notes it
/// where it was not tried for want of time.
pub fn by_size(run: &mut Run, winner: Option<usize>) {
    let best = best_per_size(&run.entries);
    let elements: Vec<i64> = run.traces.iter().map(input_elements).collect();
    let Some(parts) = split(&best, &elements) else { return };
    // Each size at its best candidate's speedup (the original's 1 where none is), roughly;
    // not worth a round unless it beats the winner.
    let speedup =
        |(z, k): (usize, &Option<usize>)| k.map_or(1.0, |k| run.entries[k].timings[z].as_ref().unwrap().speedup);
    let expected = superopt_bench::geomean(best.iter().enumerate().map(speedup));
    if winner.is_some_and(|w| expected <= run.entries[w].score() * superopt_bench::MIN_SPEEDUP) {
        return;
    }
    let end = run.budget.end();
    let left = end.saturating_duration_since(Instant::now());
    if left < Duration::from_secs(2) {
        run.notes.push("a by-size candidate was not tried: the time budget ran out".into());
        return;
    }
    let mut c = combine(parts.iter().map(|(range, j)| (*range, run.entries[*j].candidate.clone())).collect());
    let original: Vec<Size> = Size::ALL.into_iter().filter(|z| best[z.index()].is_none()).collect();
    if !original.is_empty() {
        let at: Vec<&str> = original.iter().map(|z| z.name()).collect();
        c.rules.push(format!("the original fn at the other sizes (traced: {})", at.join(", ")));
    }
    let id = run.add(c);
    for z in Size::ALL {
        run.entry_mut(id).runs_original[z.index()] = best[z.index()].is_none();
    }
    for (_, j) in &parts {
        let (field, launches) = (run.entries[*j].field.clone(), run.entries[*j].launches.clone());
        let e = run.entry_mut(id);
        e.field.extend(field);
        e.launches.extend(launches);
    }
    run.say("checking by-size");
    stage(run, id);
    dispatch(run, id);
    same_as_parts(run, id, &best);
    if run.entry(id).is_dropped() {
        return;
    }
    let left = end.saturating_duration_since(Instant::now());
    if let Err(e) = crate::bench::time(run, &[id], left, crate::session::Sampling::Decide) {
        run.entry_mut(id).status = crate::ledger::Status::Dropped(format!("timing failed: {e}"));
    }
}

/// At each size where the by-size candidate runs a part: that it returns there, bit for bit,
/// what that part returns (the same emitted code, verified at that size), and so takes over
/// the part's verdict there, which float64 references and edge inputs would only repeat.
fn same_as_parts(run: &mut Run, id: crate::ledger::CandidateId, best: &[Option<usize>]) {
    let program = run.entry(id).program();
    for z in Size::ALL {
        let Some(j) = best[z.index()] else { continue };
        if run.entry(id).is_dropped() {
            return;
        }
        let part = run.entries[j].program();
        match run.session.same_outputs(&program, &part, z) {
            Ok(true) => {
                let verdict = run.entries[j].verdicts[z.index()].clone();
                let e = run.entry_mut(id);
                e.verdicts[z.index()] = verdict;
                e.candidate.explain.push(format!("at {z}: {part}'s verdict (the same outputs, bit for bit)"));
            }
            Ok(false) => run.entry_mut(id).drop_with(format!("at {z}: does not return {part}'s outputs")),
            Err(e) => run.entry_mut(id).drop_with(format!("at {z}: {e}")),
        }
    }
    if !run.entry(id).is_dropped() {
        let e = run.entry_mut(id);
        e.status = crate::verify::status(e);
    }
}

/// At each size where the by-size candidate runs the original: that it returns fn's own
/// outputs there (so that size needs no float64 reference: it computes what fn does), and
/// its cost of choosing, with which it is the original plus that, which timing two runs
/// of one program cannot tell apart from noise (see [`crate::decide::pick_winner`]).
fn dispatch(run: &mut Run, id: crate::ledger::CandidateId) {
    let program = run.entry(id).program();
    let kept: Vec<Size> = Size::ALL.into_iter().filter(|z| run.entry(id).runs_original[z.index()]).collect();
    for z in kept {
        if run.entry(id).is_dropped() {
            return;
        }
        match run.session.dispatch(&program, z) {
            Ok(Some(s)) => run.entry_mut(id).dispatch[z.index()] = Some(s),
            Ok(None) => run.entry_mut(id).drop_with(format!("at {z}: does not return the original fn's outputs")),
            Err(e) => run.entry_mut(id).drop_with(format!("at {z}: its choosing failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Status;

    #[test]
    fn one_best_candidate_everywhere_is_no_split() {
        assert_eq!(split(&[Some(2), Some(2), Some(2)], &[10, 100, 1000]), None);
        assert_eq!(split(&[None, None, None], &[10, 100, 1000]), None);
    }

    #[test]
    fn sizes_meet_halfway_between_parts() {
        let parts = split(&[Some(1), Some(3), Some(3)], &[100, 10_000, 1_000_000]).unwrap();
        let want =
            vec![(SizeRange { above: None, upto: Some(1000) }, 1), (SizeRange { above: Some(1000), upto: None }, 3)];
        assert_eq!(parts, want);
        let parts = split(&[Some(1), Some(3), Some(1)], &[100, 10_000, 1_000_000]).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1].0, SizeRange { above: Some(1000), upto: Some(100_000) });
        assert!(parts[1].0.admits(10_000) && !parts[1].0.admits(100) && !parts[1].0.admits(1_000_000));
    }

    /// An entry with the given speedups at small, typical, large (noise-free samples).
    fn entry(k: usize, verified: bool, speedups: [f64; 3]) -> Entry {
        let mut e = Entry::verified_with(k, speedups);
        e.status = if verified { Status::Verified } else { Status::Rejected };
        e
    }

    #[test]
    fn the_best_verified_significant_speedup_wins_each_size() {
        let entries =
            [entry(0, true, [3.0, 1.2, 1.1]), entry(1, true, [1.5, 2.0, 4.0]), entry(2, false, [9.0, 9.0, 9.0])];
        assert_eq!(best_per_size(&entries), vec![Some(0), Some(1), Some(1)]);
        // A size where no candidate is significantly faster is the original's.
        let entries = [entry(0, true, [3.0, 1.01, 1.1]), entry(1, true, [1.5, 1.0, 4.0])];
        assert_eq!(best_per_size(&entries), vec![Some(0), None, Some(1)]);
    }

    /// An entry accepted at small and typical, then out of the run at large.
    fn cut_short(k: usize, ran_out: bool) -> Entry {
        let mut e = entry(k, true, [4.0, 3.0, 1.0]);
        e.timings[2] = None;
        e.verdicts = [Some(accepted()), Some(accepted()), None];
        if ran_out {
            e.out_of_time("at large: not verified: the time budget ran out".into());
        } else {
            e.drop_with("at large: the candidate crashed".into());
        }
        e
    }

    fn accepted() -> superopt_verify::Verdict {
        superopt_verify::judge(&[], superopt_verify::Tolerance::Relative)
    }

    #[test]
    fn sizes_accepted_before_the_budget_ran_out_are_a_candidates_own() {
        let entries = [cut_short(0, true), entry(1, true, [1.5, 1.5, 1.5])];
        assert!(entries[0].verified_at(Size::Small) && !entries[0].verified_at(Size::Large));
        assert!(!entries[0].verified(), "it never wins as a whole");
        assert_eq!(best_per_size(&entries), vec![Some(0), Some(0), Some(1)]);
        // Near miss: out of the run for a failure, not for time: no size is its own.
        let entries = [cut_short(0, false), entry(1, true, [1.5, 1.5, 1.5])];
        assert!(!entries[0].verified_at(Size::Small));
        assert_eq!(best_per_size(&entries), vec![Some(1), Some(1), Some(1)]);
        // Near miss: rejected at small, accepted at typical, then out of time: a size
        // rejected rules out every size.
        let mut rejected = cut_short(0, true);
        rejected.verdicts[0].as_mut().unwrap().accepted = false;
        assert!(!rejected.verified_at(Size::Typical) && !rejected.verified_at(Size::Small));
        assert_eq!(best_per_size(&[rejected, entry(1, true, [1.5, 1.5, 1.5])]), vec![Some(1), Some(1), Some(1)]);
    }

    #[test]
    fn sizes_that_do_not_grow_are_no_split() {
        assert_eq!(split(&[Some(1), Some(3), Some(3)], &[100, 100, 1000]), None);
    }

    #[test]
    fn sizes_where_nothing_wins_are_left_to_the_original() {
        let parts = split(&[Some(4), Some(4), None], &[100, 10_000, 1_000_000]).unwrap();
        assert_eq!(parts, vec![(SizeRange { above: None, upto: Some(100_000) }, 4)]);
        let parts = split(&[None, Some(2), None], &[100, 10_000, 1_000_000]).unwrap();
        assert_eq!(parts, vec![(SizeRange { above: Some(1000), upto: Some(100_000) }, 2)]);
    }
}
