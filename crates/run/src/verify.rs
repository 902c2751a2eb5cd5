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
use crate::session::{cases, OUT_OF_TIME};
use crate::stage::stage;
use std::cmp::Ordering;
use std::time::{Duration, Instant};
use superopt_bench::Size;
use superopt_search::{modelled_cost, Candidate, Compile, Source};
use superopt_verify::{judge, SeedFigures};
use superopt_worker::protocol::{Backend, Case, DeviceKind};

pub fn verify(run: &mut Run) {
    note_reference_device(run);
    let all = cases(&run.seeds);
    let order = order(run);
    for (rank, id) in order.iter().enumerate() {
        let e = run.entry_mut(*id);
        if !e.is_dropped() {
            e.verify_rank = Some(rank);
        }
    }
    let mut progress: Vec<Progress> = order.into_iter().map(Progress::new).collect();
    let mut ran_out = false;
    let (mut spent, started) = (Spent::default(), Instant::now());
    loop {
        // Before anything waits for a candidate's first call: the model's prediction.
        for p in progress.iter_mut() {
            predict(run, p, &mut spent);
        }
        if let Some(w) = &run.warm {
            progress.iter().filter(|p| !p.open(run.entry(p.id))).for_each(|p| w.forget(p.id));
        }
        progress.retain(|p| p.open(run.entry(p.id)));
        let Some(first) = progress.first() else { break };
        let deadline = run.budget.verify_deadline();
        if Instant::now() > deadline {
            for p in &progress {
                let size = Size::ALL[p.size];
                run.entry_mut(p.id).out_of_time(format!("at {size}: {OUT_OF_TIME}"));
            }
            ran_out = true;
            break;
        }
        let Run { session, warm, .. } = &mut *run;
        let starts = |p: &Progress| p.case == 0;
        let free = |p: &Progress| !starts(p) || warm.as_ref().is_none_or(|w| w.claim(p.id, Size::ALL[p.size]));
        match pick(&progress, |p| session.reference_ready(Size::ALL[p.size], all[p.case]) && free(p)) {
            Some(k) => step(run, &mut progress[k], &all, &mut spent),
            // What is ready waits for a warm worker making its first call.
            None if blocked_by_warm(run, &progress, &all) => {
                if let Some(w) = &run.warm {
                    let waiting = Instant::now();
                    w.wait(deadline.min(Instant::now() + Duration::from_secs(1)));
                    spent.warm += waiting.elapsed().as_secs_f64();
                }
            }
            None => {
                let size = Size::ALL[first.size];
                run.say(&format!("waiting for the float64 references at {size}"));
                let waiting = Instant::now();
                run.session.await_reference(run.budget.last_verify_deadline());
                run.budget.waited_for_references(waiting.elapsed());
            }
        }
    }
    run.notes.push(spent.said(started.elapsed().as_secs_f64() - run.budget.waited.as_secs_f64()));
    // Said before the pool stops: its kill of the running cases is no trouble of theirs.
    let pool = if ran_out { pool_said(run) } else { None };
    run.session.stop_references();
    crate::warm::stop(run);
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

/// Whether a candidate's next case has its reference and waits only for a warm worker's
/// first call of it (else what it waits for is a reference, whose time is not counted).
fn blocked_by_warm(run: &mut Run, progress: &[Progress], all: &[Case]) -> bool {
    let Run { session, warm, .. } = run;
    let Some(w) = warm.as_ref() else { return false };
    progress.iter().any(|p| {
        let size = Size::ALL[p.size];
        p.case == 0 && w.calling(p.id, size) && session.reference_ready(size, all[p.case])
    })
}

/// The first candidate (in `progress`'s order) whose next case is `ready`.
fn pick(progress: &[Progress], ready: impl FnMut(&Progress) -> bool) -> Option<usize> {
    progress.iter().position(ready)
}

/// Leaves `p`'s candidate out of each next size the model predicts it cannot win at
/// ([`crate::screen::predicted`]), before its first call there; a warm worker's call there
/// not started yet is taken back.
fn predict(run: &mut Run, p: &mut Progress, spent: &mut Spent) {
    while p.case == 0 && p.open(run.entry(p.id)) {
        let size = Size::ALL[p.size];
        let screening = Instant::now();
        let predicted = crate::screen::predicted(run, p.id, size);
        spent.screens += screening.elapsed().as_secs_f64();
        let Some(why) = predicted else { return };
        if let Some(w) = &run.warm {
            w.claim(p.id, size);
        }
        outpace(run.entry_mut(p.id), p, why);
    }
}

/// Where verification's seconds went (waiting for the pool's references aside).
#[derive(Default)]
struct Spent {
    /// Loading candidates' modules into the worker.
    loading: f64,
    /// Screens ([`crate::screen`]), first calls at their sizes included.
    screens: f64,
    /// Cases: the candidates' calls (first calls included) and their error figures.
    cases: f64,
    /// Waiting for warm workers' first calls.
    warm: f64,
}

impl Spent {
    fn said(&self, total: f64) -> String {
        let rest = (total - self.loading - self.screens - self.cases - self.warm).max(0.0);
        format!(
            "verification took {total:.1}s: {:.1}s checking cases, {:.1}s screening, {:.1}s loading modules, \
             {:.1}s waiting for warm workers' first calls, {rest:.1}s else",
            self.cases, self.screens, self.loading, self.warm
        )
    }
}

/// Verifies one case of `p`'s candidate; judges its size when that was the last case.
fn step(run: &mut Run, p: &mut Progress, all: &[Case], spent: &mut Spent) {
    let size = Size::ALL[p.size];
    if let Some(why) = outlasts(run, p) {
        return run.entry_mut(p.id).out_of_time(format!("at {size}: {OUT_OF_TIME} ({why})"));
    }
    if p.case == 0 {
        if p.size == 0 || !run.entry(p.id).staged {
            run.say(&format!("verifying {}", run.entry(p.id).candidate.label()));
        }
        if !run.entry(p.id).staged {
            let loading = Instant::now();
            stage(run, p.id);
            spent.loading += loading.elapsed().as_secs_f64();
        }
        if run.entry(p.id).is_dropped() {
            return;
        }
        let screening = Instant::now();
        let screened = crate::screen::screen(run, p.id, size);
        spent.screens += screening.elapsed().as_secs_f64();
        if let Some(why) = screened {
            return outpace(run.entry_mut(p.id), p, why);
        }
    }
    let (tol, Run { session, entries, .. }) = (run.config.tolerance, &mut *run);
    let e = &mut entries[p.id.0];
    let started = Instant::now();
    let got = session.verify_case(&e.program(), size, all[p.case], tol);
    let took = started.elapsed().as_secs_f64();
    (p.seconds, spent.cases) = (p.seconds + took, spent.cases + took);
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
    let took = started.elapsed().as_secs_f64();
    spent.cases += took;
    e.verify_s[p.size] = Some(p.seconds + took);
    if let Err(err) = finished {
        return e.drop_with(format!("at {size}: {err}"));
    }
    e.verdicts[p.size] = Some(judge(&std::mem::take(&mut p.figs), tol));
    next_size(e, p);
}

/// `p` on to its next size; after the last, the candidate's status is settled.
fn next_size(e: &mut Entry, p: &mut Progress) {
    (p.size, p.case, p.seconds) = (p.size + 1, 0, 0.0);
    p.figs.clear();
    if p.size == Size::ALL.len() {
        close(e);
    }
}

/// Its status once every size is judged or screened out: out of the run where a screen
/// left sizes out and every judged size was accepted, its accepted sizes kept
/// ([`Entry::verified_at`]).
fn close(e: &mut Entry) {
    if e.is_dropped() {
        return;
    }
    let said: Vec<&str> = e.outpaced.iter().flatten().map(String::as_str).collect();
    let judged_accepted = e.verdicts.iter().flatten().all(|v| v.accepted);
    if said.is_empty() || !judged_accepted {
        e.status = status(e);
    } else {
        e.drop_with(said.join("; "));
        e.screened = true;
    }
}

/// Leaves `p`'s size unverified (screened as too slow to win there); after the last size,
/// the candidate is out of the run, its accepted sizes kept ([`Entry::verified_at`]).
fn outpace(e: &mut Entry, p: &mut Progress, why: String) {
    e.outpaced[p.size] = Some(why);
    next_size(e, p);
}

/// Why starting `p`'s next size would outlast the verification budget, if it would: where
/// warm workers make first calls (a GPU backend), a candidate whose program differs by size
/// compiles its kernels anew at each size; without a warm worker's call there, it would take
/// about what small took, and a request cannot be stopped halfway (it would take the
/// timing's share, and a verified win would go untimed).
fn outlasts(run: &Run, p: &Progress) -> Option<String> {
    let e = run.entry(p.id);
    let warm = run.warm.as_ref()?;
    if p.case != 0 || p.size == 0 || p.id == CandidateId::TRACED || !crate::warm::per_size(e) {
        return None;
    }
    let left = run.budget.verify_deadline().saturating_duration_since(Instant::now()).as_secs_f64();
    too_long(e.verify_s[0], left, warm.warmed(p.id, Size::ALL[p.size]))
}

/// Whether a size not warmed, expected to take what `small` took, outlasts `left` seconds.
fn too_long(small: Option<f64>, left: f64, warmed: bool) -> Option<String> {
    let small = small?;
    (!warmed && small > left).then(|| format!("its program differs by size: small took {small:.0}s, {left:.0}s left"))
}

/// Verified where every size is accepted, but those where it runs the original `fn` (a
/// by-size candidate), which must return fn's own outputs there (its `dispatch` is timed).
pub fn status(e: &Entry) -> Status {
    let accepted = Size::ALL.iter().all(|z| match e.runs_original[z.index()] {
        true => e.dispatch[z.index()].is_some(),
        false => e.verdicts[z.index()].as_ref().is_some_and(|v| v.accepted),
    });
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
/// least match), then each source's furthest-reaching candidate (`reach`; those with
/// generated kernels first), then the rest; each group by modelled cost. On a GPU a
/// compiled candidate's first call compiles its kernels for tens of seconds: a budget that
/// runs out then drops near-duplicates (islands beside a whole compile), not the best of
/// each search.
pub fn order(run: &mut Run) -> Vec<CandidateId> {
    // A second per candidate at most: past it, a program counts one launch per node.
    let device = run.device;
    for e in run.entries.iter_mut().filter(|e| e.modelled_cost.is_none()) {
        e.modelled_cost = Some(modelled_cost(&e.candidate, &device, Instant::now() + Duration::from_secs(1)));
    }
    let cost: Vec<f64> = run.entries.iter().map(|e| e.modelled_cost.unwrap_or(f64::INFINITY)).collect();
    let candidates: Vec<(&Candidate, bool)> = run.entries.iter().map(|e| (&e.candidate, !e.is_dropped())).collect();
    by_group(&groups(&candidates), &cost)
}

/// What a candidate adds to its source's program: generated kernels first, then a whole
/// compile, then islands (what the cost model does not price: it sees no kernel's gain,
/// and the same fusions in islands as in a whole compile).
fn reach(c: &Candidate) -> (bool, u8) {
    let compile = match c.compile {
        Compile::Whole => 2,
        Compile::Islands => 1,
        Compile::Eager => 0,
    };
    (c.kernels, compile)
}

/// Per candidate (and whether it is still in the run), its group: 0 the traced program,
/// 1 its whole compile, 2 and 3 the first of its source with the most [`reach`] among
/// those still in (2 where it calls generated kernels: the cost model sees no kernel's
/// gain, and their first calls, which compile them, are the longest to make ahead), 4 the
/// rest. The trace's whole compile is its source's furthest reaching: the trace's islands,
/// one `mx.compile` per island (their first calls took 6.5 s at gated_delta's small size and
/// 34.9 s at the chunked rule's on an H100, for 0.95-0.99x), go with the rest.
fn groups(cs: &[(&Candidate, bool)]) -> Vec<u8> {
    let mut group = vec![REST; cs.len()];
    for (k, (c, _)) in cs.iter().enumerate() {
        if k == CandidateId::TRACED.0 {
            group[k] = 0;
        } else if compiles_the_trace(c) {
            group[k] = 1;
        }
    }
    for (k, (c, alive)) in cs.iter().enumerate() {
        let rival = |j: usize| group[j] >= 1 && j != k && cs[j].1 && cs[j].0.source == c.source;
        let ahead = |j: usize| reach(cs[j].0) > reach(c) || (reach(cs[j].0) == reach(c) && j < k);
        if group[k] == REST && *alive && !(0..cs.len()).any(|j| rival(j) && ahead(j)) {
            group[k] = if c.kernels { 2 } else { 3 };
        }
    }
    group
}

/// The group of candidates no source sends ahead.
const REST: u8 = 4;

/// Candidate ids by `group`, then by `cost`.
fn by_group(group: &[u8], cost: &[f64]) -> Vec<CandidateId> {
    let mut ids: Vec<CandidateId> = (0..group.len()).map(CandidateId).collect();
    ids.sort_by(|a, b| (group[a.0], cost[a.0]).partial_cmp(&(group[b.0], cost[b.0])).unwrap_or(Ordering::Equal));
    ids
}

/// Whether `c` is the traced program under `mx.compile`, whole, without kernels.
pub fn compiles_the_trace(c: &Candidate) -> bool {
    c.source == Source::AsTraced && c.compile == Compile::Whole && !c.kernels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: usize, size: usize, case: usize) -> Progress {
        Progress { id: CandidateId(id), size, case, figs: vec![], seconds: 0.0 }
    }

    #[test]
    fn verification_says_where_its_seconds_went() {
        let spent = Spent { loading: 8.0, screens: 10.0, cases: 22.0, warm: 9.0 };
        assert_eq!(
            spent.said(49.0),
            "verification took 49.0s: 22.0s checking cases, 10.0s screening, 8.0s loading modules, \
             9.0s waiting for warm workers' first calls, 0.0s else"
        );
    }

    #[test]
    fn a_candidate_waiting_for_a_reference_lets_the_next_one_on() {
        let progress = [at(0, 2, 0), at(1, 0, 3), at(2, 0, 0)];
        let small_only = |p: &Progress| Size::ALL[p.size] == Size::Small;
        assert_eq!(pick(&progress, small_only), Some(1), "the traced program waits for large; the next goes on");
        assert_eq!(pick(&progress, |_| true), Some(0), "with every reference ready, the order decides");
        assert_eq!(pick(&progress, |_| false), None, "nothing ready: wait");
        let case_three = |p: &Progress| p.case == 3;
        assert_eq!(pick(&progress, case_three), Some(1), "readiness is per case, not per size");
    }

    #[test]
    fn the_traced_program_then_its_compile_then_the_modelled_cost() {
        let cost = [5.0, 1.0, 9.0, 2.0];
        assert_eq!(by_group(&[0, 2, 1, 2], &cost), [0, 2, 1, 3].map(CandidateId));
        assert_eq!(by_group(&[0, 2, 2, 2], &cost), [0, 1, 3, 2].map(CandidateId), "one group: by cost alone");
    }

    #[test]
    fn a_size_that_would_outlast_the_budget_is_not_started_unless_warmed() {
        let said = too_long(Some(52.0), 40.0, false).expect("52s expected, 40s left");
        assert_eq!(said, "its program differs by size: small took 52s, 40s left");
        assert_eq!(too_long(Some(52.0), 40.0, true), None, "a warm worker compiled its kernels");
        assert_eq!(too_long(Some(30.0), 40.0, false), None, "it fits");
        assert_eq!(too_long(None, 0.0, false), None, "nothing measured: nothing predicted");
    }

    #[test]
    fn each_source_sends_its_furthest_reaching_candidate_ahead() {
        let plan = superopt_ir::Plan { variants: vec![], per_size_because: None };
        let with =
            |source, compile, kernels| Candidate { kernels, ..Candidate::new(source, plan.clone(), compile, vec![]) };
        let cs = [
            with(Source::AsTraced, Compile::Eager, false),
            with(Source::AsTraced, Compile::Whole, false),
            with(Source::AsTraced, Compile::Islands, false),
            with(Source::Egraph, Compile::Eager, false),
            with(Source::Egraph, Compile::Whole, false),
            with(Source::Egraph, Compile::Islands, false),
            with(Source::Egraph, Compile::Whole, true),
            with(Source::Egraph, Compile::Eager, true),
            with(Source::Cleanup, Compile::Islands, false),
            with(Source::Cleanup, Compile::Whole, false),
        ];
        let all: Vec<(&Candidate, bool)> = cs.iter().map(|c| (c, true)).collect();
        let groups = groups(&all);
        assert_eq!(groups, [0, 1, 4, 4, 4, 4, 2, 4, 4, 3], "islands of the trace go with the rest");
        let cost = [9.0, 8.0, 8.0, 7.0, 5.0, 5.0, 6.0, 6.5, 8.0, 7.5];
        let order: Vec<usize> = by_group(&groups, &cost).into_iter().map(|c| c.0).collect();
        assert_eq!(order, [0, 1, 6, 9, 4, 5, 7, 3, 2, 8], "egraph+compile+kernels before cheaper-looking siblings");
        let costly_kernels = [9.0, 8.0, 8.0, 7.0, 5.0, 5.0, 9.5, 6.5, 8.0, 7.5];
        let order: Vec<usize> = by_group(&groups, &costly_kernels).into_iter().map(|c| c.0).collect();
        assert_eq!(order[2], 6, "kernels lead the sources' best however the model prices them");
        let mut dropped = all.clone();
        dropped[6].1 = false;
        assert_eq!(super::groups(&dropped)[3..8], [4, 4, 4, 4, 2], "out of the run: egraph+kernels leads instead");
    }

    #[test]
    fn a_size_screened_out_is_left_unverified_and_the_rest_are_kept() {
        let accepted = || superopt_verify::judge(&[], superopt_verify::Tolerance::Relative);
        let mut e = Entry::verified_with(3, [1.0; 3]);
        e.status = Status::Open;
        let mut p = at(3, 0, 0);
        e.verdicts[0] = Some(accepted());
        p.size = 1;
        outpace(&mut e, &mut p, "at typical: not verified: 3.0x slower".into());
        assert_eq!((p.size, p.case, e.is_dropped()), (2, 0, false), "on to large");
        e.verdicts[2] = Some(accepted());
        close(&mut e);
        assert_eq!(e.dropped(), Some("at typical: not verified: 3.0x slower"));
        assert!(e.verified_at(Size::Small) && e.verified_at(Size::Large) && !e.verified_at(Size::Typical));
        assert!(!e.verified(), "it never wins as a whole");
        // Near miss: a judged size rejected rules out the sizes accepted.
        e.status = Status::Open;
        e.verdicts[2].as_mut().unwrap().accepted = false;
        close(&mut e);
        assert_eq!(e.status, Status::Rejected);
        assert!(!e.verified_at(Size::Small));
        // Near miss: screened out at typical, then its call fails at large: no size is its own.
        let mut failed = Entry::verified_with(5, [1.0; 3]);
        failed.status = Status::Open;
        failed.verdicts[0] = Some(accepted());
        let mut p = at(5, 1, 0);
        outpace(&mut failed, &mut p, "at typical: not verified: 3.0x slower".into());
        failed.drop_with("at large: the candidate raised ValueError".into());
        close(&mut failed);
        assert!(!failed.verified_at(Size::Small), "a failed call rules out every size");
        // Near miss: nothing screened out: the usual verdict.
        let mut whole = Entry::verified_with(4, [1.0; 3]);
        whole.verdicts = [Some(accepted()), Some(accepted()), Some(accepted())];
        close(&mut whole);
        assert!(whole.verified());
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
