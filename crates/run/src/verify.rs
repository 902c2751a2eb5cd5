//! Stage 6: every candidate against `fn` at every size, on normal seeds and edge inputs,
//! judged against float64 references; the traced program first (the round-trip check),
//! then the rest by modelled cost, so that a budget that runs out drops the least promising.
//!
//! Each candidate goes through its cases in order, size by size, but none waits for a
//! reference the pool is still computing while another candidate has a case that is ready:
//! the step taken is the first candidate's (in that order) whose next case is ready. So
//! verification runs beside the references (small's are done long before large's), and
//! on a backend without a pool (every case ready) it is candidate after candidate.

use crate::ledger::{CandidateId, Entry, Run, Status};
use crate::session::{cases, Session, OUT_OF_TIME};
use crate::stage::stage;
use std::cmp::Ordering;
use std::time::{Duration, Instant};
use superopt_bench::Size;
use superopt_search::{modelled_cost, Candidate, Compile, Source};
use superopt_verify::{judge, SeedFigures, Tolerance};
use superopt_worker::protocol::{Backend, Case, DeviceKind};

pub fn verify(run: &mut Run) {
    note_reference_device(run);
    let all = cases(&run.seeds);
    let mut progress: Vec<Progress> = order(run).into_iter().map(Progress::new).collect();
    let mut ran_out = false;
    loop {
        progress.retain(|p| p.open(run.entry(p.id)));
        let Some(first) = progress.first() else { break };
        let deadline = run.budget.verify_deadline();
        if Instant::now() > deadline {
            for p in &progress {
                let size = Size::ALL[p.size];
                run.entry_mut(p.id).drop_with(format!("at {size}: {OUT_OF_TIME}"));
            }
            ran_out = true;
            break;
        }
        match pick(&progress, |size, k| run.session.reference_ready(size, all[k])) {
            Some(k) => step(run, &mut progress[k], &all),
            None => {
                let size = Size::ALL[first.size];
                run.say(&format!("waiting for the float64 references at {size}"));
                let waiting = Instant::now();
                run.session.await_reference(run.budget.last_verify_deadline());
                run.budget.waited_for_references(waiting.elapsed());
            }
        }
    }
    // Said before the pool stops: its kill of the running cases is no trouble of theirs.
    let pool = if ran_out { pool_said(run) } else { None };
    run.session.stop_references();
    if !run.budget.waited.is_zero() {
        let waited = run.budget.waited.as_secs_f64();
        run.notes.push(format!(
            "verification waited {waited:.0}s for the float64 references (not counted in the time budget)"
        ));
    }
    if ran_out && run.session.pool.is_some() && !run.session.references_kept() {
        let took = run.budget.start.elapsed().as_secs();
        let budget = run.budget.total.as_secs();
        run.notes.push(format!(
            "the float64 references (computed on the CPU) were not all done after {took}s: \
             run again with a larger --time-budget (this run: {budget}s)"
        ));
        run.notes.extend(pool);
    }
}

/// How far the reference pool got, and what went wrong in its workers (none: no pool).
fn pool_said(run: &mut Run) -> Option<String> {
    let pool = run.session.pool.as_mut()?;
    let said = [vec![pool.progress()], pool.troubles()].concat();
    Some(format!("the reference pool: {}", said.join("; ")))
}

/// Where a candidate's verification stands: its next case, and the figures so far.
struct Progress {
    id: CandidateId,
    /// Index into [`Size::ALL`].
    size: usize,
    /// Index into the run's cases.
    case: usize,
    figs: Vec<SeedFigures>,
    /// Seconds its requests at this size took.
    seconds: f64,
}

impl Progress {
    fn new(id: CandidateId) -> Progress {
        Progress { id, size: 0, case: 0, figs: vec![], seconds: 0.0 }
    }

    fn open(&self, e: &Entry) -> bool {
        !e.is_dropped() && self.size < Size::ALL.len()
    }
}

/// The first candidate (in `progress`'s order) whose next case is `ready` (by its size and
/// index into the cases).
fn pick(progress: &[Progress], mut ready: impl FnMut(Size, usize) -> bool) -> Option<usize> {
    progress.iter().position(|p| ready(Size::ALL[p.size], p.case))
}

/// Verifies one case of `p`'s candidate; judges its size when that was the last case.
fn step(run: &mut Run, p: &mut Progress, all: &[Case]) {
    let size = Size::ALL[p.size];
    if p.size == 0 && p.case == 0 {
        run.say(&format!("verifying {}", run.entry(p.id).candidate.label()));
        if !run.entry(p.id).staged {
            stage(run, p.id);
        }
        if run.entry(p.id).is_dropped() {
            return;
        }
    }
    let (tol, Run { session, entries, .. }) = (run.config.tolerance, &mut *run);
    let e = &mut entries[p.id.0];
    let started = Instant::now();
    let got = session.verify_case(&e.program(), size, all[p.case], tol);
    p.seconds += started.elapsed().as_secs_f64();
    match got {
        Ok(figs) => p.figs.extend(figs),
        Err(err) => return e.drop_with(format!("at {size}: {err}")),
    }
    p.case += 1;
    if p.case < all.len() {
        return;
    }
    let started = Instant::now();
    let finished = session.finish_size(size, &mut p.figs, tol);
    e.verify_s[p.size] = Some(p.seconds + started.elapsed().as_secs_f64());
    if let Err(err) = finished {
        return e.drop_with(format!("at {size}: {err}"));
    }
    e.verdicts[p.size] = Some(judge(&std::mem::take(&mut p.figs), tol));
    (p.size, p.case, p.seconds) = (p.size + 1, 0, 0.0);
    if p.size == Size::ALL.len() {
        e.status = status(e);
    }
}

fn status(e: &Entry) -> Status {
    let accepted = e.verdicts.iter().all(|v| v.as_ref().is_some_and(|v| v.accepted));
    if accepted {
        Status::Verified
    } else {
        Status::Rejected
    }
}

/// Says, on a GPU backend, why the float64 references run on the CPU.
fn note_reference_device(run: &mut Run) {
    let on = &run.session.reference_device;
    if run.session.backend() != Backend::Cpu && on.device == DeviceKind::Cpu {
        run.notes.push(format!("float64 references on the CPU: {}", on.why));
    }
}

/// The traced program first, then `mx.compile` of it (the contender every run must at
/// least match), then the rest by modelled cost.
fn order(run: &Run) -> Vec<CandidateId> {
    // A second per candidate at most: past it, a program counts one launch per node.
    let cost: Vec<f64> = run
        .entries
        .iter()
        .map(|e| modelled_cost(&e.candidate, &run.device, Instant::now() + Duration::from_secs(1)))
        .collect();
    let compiled = |id: &CandidateId| compiles_the_trace(&run.entry(*id).candidate);
    by_cost(run.ids(), &cost, compiled)
}

/// `ids` with the traced program first, then those `first` picks, each group by `cost`.
fn by_cost(ids: Vec<CandidateId>, cost: &[f64], first: impl Fn(&CandidateId) -> bool) -> Vec<CandidateId> {
    let mut rest: Vec<CandidateId> = ids.into_iter().filter(|id| *id != CandidateId::TRACED).collect();
    rest.sort_by(|a, b| (!first(a), cost[a.0]).partial_cmp(&(!first(b), cost[b.0])).unwrap_or(Ordering::Equal));
    [vec![CandidateId::TRACED], rest].concat()
}

/// Whether `c` is the traced program under `mx.compile`, whole, without kernels.
pub fn compiles_the_trace(c: &Candidate) -> bool {
    c.source == Source::AsTraced && c.compile == Compile::Whole && !c.kernels
}

/// Judges entry `e` at every size, all its cases at once (the references are done or
/// computed as needed); a failure to run drops it.
pub fn verify_entry(s: &mut Session, e: &mut Entry, seeds: &[u64], tol: Tolerance, deadline: Instant) {
    if e.is_dropped() {
        return;
    }
    let id = e.program();
    for size in Size::ALL {
        let started = Instant::now();
        let figs = s.verify(&id, size, seeds, tol, Some(deadline));
        e.verify_s[size.index()] = Some(started.elapsed().as_secs_f64());
        match figs {
            Ok(figs) => e.verdicts[size.index()] = Some(judge(&figs, tol)),
            Err(err) => {
                e.drop_with(format!("at {size}: {err}"));
                return;
            }
        }
    }
    e.status = status(e);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: usize, size: usize, case: usize) -> Progress {
        Progress { id: CandidateId(id), size, case, figs: vec![], seconds: 0.0 }
    }

    #[test]
    fn a_candidate_waiting_for_a_reference_lets_the_next_one_on() {
        let progress = [at(0, 2, 0), at(1, 0, 3), at(2, 0, 0)];
        let small_only = |size: Size, _: usize| size == Size::Small;
        assert_eq!(pick(&progress, small_only), Some(1), "the traced program waits for large; the next goes on");
        assert_eq!(pick(&progress, |_, _| true), Some(0), "with every reference ready, the order decides");
        assert_eq!(pick(&progress, |_, _| false), None, "nothing ready: wait");
        let case_three = |_: Size, k: usize| k == 3;
        assert_eq!(pick(&progress, case_three), Some(1), "readiness is per case, not per size");
    }

    #[test]
    fn the_traced_program_then_its_compile_then_the_modelled_cost() {
        let ids: Vec<CandidateId> = (0..4).map(CandidateId).collect();
        let cost = [5.0, 1.0, 9.0, 2.0];
        let order = by_cost(ids.clone(), &cost, |id| id.0 == 2);
        assert_eq!(order, [0, 2, 1, 3].map(CandidateId));
        assert_eq!(by_cost(ids, &cost, |_| false), [0, 1, 3, 2].map(CandidateId), "no compile: by cost alone");
    }

    #[test]
    fn only_the_whole_compile_of_the_traced_program_goes_first() {
        let plan = superopt_ir::Plan { variants: vec![], per_size_because: None };
        let with = |source, compile| Candidate::new(source, plan.clone(), compile, vec![]);
        assert!(compiles_the_trace(&with(Source::AsTraced, Compile::Whole)));
        assert!(!compiles_the_trace(&with(Source::AsTraced, Compile::Islands)));
        assert!(!compiles_the_trace(&with(Source::Egraph, Compile::Whole)));
        assert!(!compiles_the_trace(&with(Source::AsTraced, Compile::Eager)));
    }
}
