//! Stage 6: every candidate against `fn` at every size, on normal seeds and edge inputs,
//! judged against float64 references; the traced program first (the round-trip check),
//! then the rest by modelled cost, so that a budget that runs out drops the least promising.

use crate::ledger::{CandidateId, Entry, Run, Status};
use crate::session::Session;
use crate::stage::stage;
use std::time::{Duration, Instant};
use superopt_bench::Size;
use superopt_search::modelled_cost;
use superopt_verify::{judge, Tolerance};
use superopt_worker::protocol::{Backend, DeviceKind};

pub fn verify(run: &mut Run) {
    let deadline = run.budget.verify_deadline();
    references(run, deadline);
    for id in order(run) {
        run.say(&format!("verifying {}", run.entry(id).candidate.label()));
        let e = run.entry(id);
        if !e.staged && !e.is_dropped() && Instant::now() < deadline {
            stage(run, id);
        }
        let (tol, Run { session, entries, seeds, .. }) = (run.config.tolerance, &mut *run);
        verify_entry(session, &mut entries[id.0], seeds, tol, deadline);
    }
}

/// Waits for the pool computing the float64 references ahead (see [`crate::references`]);
/// cases it did not do are computed by the verifying worker when first needed.
fn references(run: &mut Run, deadline: Instant) {
    let on = &run.session.reference_device;
    if run.session.backend() != Backend::Cpu && on.device == DeviceKind::Cpu {
        run.notes.push(format!("float64 references on the CPU: {}", on.why));
    }
    if run.session.pool.is_none() {
        return;
    }
    run.say(&format!("waiting for the float64 references ({} workers)", run.session.reference_workers()));
    if !run.session.await_references(deadline) {
        let took = run.budget.start.elapsed().as_secs();
        let budget = run.budget.total.as_secs();
        run.notes.push(format!(
            "the float64 references (computed on the CPU) were not all done after {took}s: \
             run again with a larger --time-budget (this run: {budget}s)"
        ));
    }
}

/// The traced program first, then the rest by modelled cost.
fn order(run: &Run) -> Vec<CandidateId> {
    // A second per candidate at most: past it, a program counts one launch per node.
    let cost: Vec<f64> = run
        .entries
        .iter()
        .map(|e| modelled_cost(&e.candidate, &run.device, Instant::now() + Duration::from_secs(1)))
        .collect();
    let mut rest: Vec<CandidateId> = run.ids().into_iter().skip(1).collect();
    rest.sort_by(|a, b| cost[a.0].total_cmp(&cost[b.0]));
    [vec![CandidateId::TRACED], rest].concat()
}

/// Judges entry `e` at every size; a failure to run drops it.
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
    let accepted = e.verdicts.iter().all(|v| v.as_ref().is_some_and(|v| v.accepted));
    e.status = if accepted { Status::Verified } else { Status::Rejected };
}
