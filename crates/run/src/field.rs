//! Stage 5: the exact check over a finite field of every candidate whose plan differs
//! from the traced one; candidates with the same plan share one check. A conclusive
//! disagreement drops the candidate.

use crate::ledger::{CandidateId, Run};
use std::time::Instant;
use superopt_ir::{Plan, Program};
use superopt_verify::field::FieldReport;

pub fn field(run: &mut Run) {
    run.say("field check");
    let deadline = run.budget.field_deadline();
    let traced = run.entry(CandidateId::TRACED).candidate.plan.clone();
    for k in 1..run.entries.len() {
        let plan = &run.entries[k].candidate.plan;
        if *plan == traced {
            continue;
        }
        let reports = match (1..k).find(|&j| run.entries[j].candidate.plan == *plan) {
            Some(j) => run.entries[j].field.clone(),
            None => check(&traced, plan, &run.traces[0], deadline),
        };
        let e = &mut run.entries[k];
        e.field = reports;
        if let Some(refuted) = e.field.iter().find(|f| f.refutes()) {
            let why = format!("field check: {}", refuted.summary());
            e.drop_with(why);
        }
    }
}

/// Each plan variant against the traced one, on inputs of the small size where the
/// variant admits them; variants reached after `deadline` are not checked.
pub fn check(traced: &Plan, plan: &Plan, small: &Program, deadline: Instant) -> Vec<FieldReport> {
    let small_types = superopt_trace::align::input_types(small);
    let mut reports = vec![];
    for ((guard, original), (_, candidate)) in traced.variants.iter().zip(&plan.variants) {
        if Instant::now() > deadline {
            reports.push(FieldReport::skipped("the time budget's share for it ran out (left to the float check)"));
            break;
        }
        let types =
            if guard.admits(&small_types) { small_types.clone() } else { superopt_trace::align::input_types(original) };
        reports.push(superopt_verify::field::check(original, candidate, &types, 2));
    }
    reports
}
