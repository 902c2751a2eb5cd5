//! Stage 9: the winner under the objective, and the capsule that says why.

use crate::ledger::{CandidateId, Entry, Run, Status};
use crate::outcome::{Done, Outcome};
use crate::propose::metal_source;
use sha2::{Digest, Sha256};
use superopt_bench::{is_win, Objective, Size};
use superopt_report::roofline::{self as floors, Ceilings};
use superopt_report::{CandidateReport, Capsule, References, SizeReport};
use superopt_search::Compile;

/// The most a by-size candidate may spend choosing, per call, where it runs the original:
/// a share of the original's time, a third of the noise band [`superopt_bench::MIN_SPEEDUP`].
pub const DISPATCH_SHARE: f64 = 0.01;

/// Marks the wins under `objective`; the winner has the best geometric-mean speedup. A
/// candidate that runs the original at some sizes wins where it meets the objective at
/// the others and costs at most [`DISPATCH_SHARE`] more at those: there it runs the same
/// program after choosing, so its cost is the choosing, timed alone (where that was not
/// timed: not significantly slower in the side-by-side timing).
pub fn pick_winner(entries: &mut [Entry], objective: Objective) -> Option<usize> {
    for e in entries.iter_mut() {
        let timed = e.timed();
        let (kept, changed): (Vec<_>, Vec<_>) = timed.iter().cloned().partition(|(z, _)| e.runs_original[z.index()]);
        let not_slower = kept.iter().all(|(z, t)| match e.dispatch[z.index()] {
            Some(s) => s <= DISPATCH_SHARE * t.baseline.median,
            None => !t.slower,
        });
        let complete = timed.len() == Size::ALL.len() && !changed.is_empty();
        e.wins = e.contends() && complete && not_slower && is_win(objective, &changed);
    }
    let wins = entries.iter().filter(|e| e.wins);
    wins.max_by(|a, b| a.score().total_cmp(&b.score())).map(|e| e.id.0)
}

/// The capsule of a finished run and the outcome that carries it.
pub fn decide(mut run: Run) -> anyhow::Result<Outcome> {
    let objective = run.config.objective;
    let winner = pick_winner(&mut run.entries, objective);
    let harness_text = std::fs::read_to_string(&run.session.harness)?;
    let round_trip = round_trip_note(run.entry(CandidateId::TRACED), !run.session.varies.is_empty());
    let candidates: Vec<CandidateReport> = run.entries.iter().map(|e| report(e, &run.traces)).collect();
    let d = run.device;
    let mut capsule = Capsule {
        tool: "superopt".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        mlx: run.session.hello.mlx.clone(),
        python: run.session.hello.python.clone(),
        device: run.session.hello.device.clone(),
        harness: run.config.session.harness.display().to_string(),
        harness_sha256: format!("{:x}", Sha256::digest(harness_text.as_bytes())),
        objective: format!("{objective:?}").to_lowercase(),
        tolerance: run.config.tolerance.name().into(),
        seeds: run.seeds.clone(),
        shapes: run
            .plan
            .per_size_because
            .clone()
            .map_or("one program for all sizes".into(), |w| format!("one program per size: {w}")),
        candidates,
        winner: winner.map(|k| run.entries[k].candidate.label()),
        winner_at: winner,
        decision: String::new(),
        output: None,
        stages: vec![],
        ceilings: Some(Ceilings { bytes_per_s: d.bytes_per_s, flops_per_s: d.flops_per_s, fixed_s: d.fixed_s }),
        floors: vec![],
        references: vec![],
        notes: std::mem::take(&mut run.notes),
    };
    roofline(&mut capsule, &run.traces);
    capsule.references = references(&capsule, &run);
    capsule.decision = match winner {
        Some(k) => {
            let e = &run.entries[k];
            let kept: Vec<&str> = Size::ALL.iter().filter(|z| e.runs_original[z.index()]).map(|z| z.name()).collect();
            let elsewhere = match kept.is_empty() {
                true => String::new(),
                false => format!(", the original fn at {}", kept.join(", ")),
            };
            format!("verified speedup: {}{elsewhere} {round_trip}", e.candidate.label())
        }
        None => {
            format!("no verified speedup — original unchanged: {}. {round_trip}", why_no_win(&run.entries, objective))
        }
    };
    let Run { session, entries, workdir, stages, .. } = run;
    let candidates = entries.into_iter().map(|e| e.candidate).collect();
    Ok(Outcome::Done(Box::new(Done::new(capsule, candidates, winner, session, harness_text, stages, workdir))))
}

/// What the capsule says of one candidate.
pub fn report(e: &Entry, traces: &[superopt_ir::Program]) -> CandidateReport {
    let c = &e.candidate;
    let sizes = Size::ALL.iter().zip(traces).map(|(z, t)| SizeReport {
        size: *z,
        shapes: t.inputs.iter().map(|i| t.value(*i).shape.clone()).collect(),
        verdict: e.verdicts[z.index()].clone(),
        timing: e.timings[z.index()].clone(),
        roofline: None,
        runs_original: e.runs_original[z.index()],
        dispatch_s: e.dispatch[z.index()],
        verify_s: e.verify_s[z.index()],
        warm_s: e.warm_s[z.index()],
    });
    CandidateReport {
        name: c.label(),
        source: c.source,
        rules: c.rules.clone(),
        explain: c.explain.clone(),
        compiled: c.compile != Compile::Eager,
        nodes: c.plan.variants.iter().map(|(_, p)| p.nodes.len()).max().unwrap_or(0),
        sizes: sizes.collect(),
        verified: e.status == Status::Verified,
        wins: e.wins,
        dropped: e.dropped().map(String::from),
        first_look_only: e.first_look_only,
        verify_rank: e.verify_rank,
        field: e.field.clone(),
        launches: e.launches.clone(),
        metal: metal_source(c),
    }
}

/// Each size's floor on the device, and the fraction of it each timed candidate reaches.
fn roofline(c: &mut Capsule, traces: &[superopt_ir::Program]) {
    let Some(ceilings) = c.ceilings else { return };
    c.floors = Size::ALL.iter().zip(traces).map(|(z, t)| floors::floor(*z, t, ceilings)).collect();
    for r in c.candidates.iter_mut() {
        for (z, f) in r.sizes.iter_mut().zip(c.floors.iter_mut()) {
            if let Some(t) = &z.timing {
                z.roofline = Some(f.seconds / t.candidate.median);
                f.original = Some(f.seconds / t.baseline.median);
            }
        }
    }
}

/// Each size's float64 references: the seconds spent on them, and their work.
fn references(c: &Capsule, run: &Run) -> Vec<References> {
    let cases = crate::session::cases(&run.seeds).len();
    let workers = run.session.reference_workers();
    let each = Size::ALL.iter().zip(&c.floors);
    each.map(|(z, f)| References {
        size: *z,
        seconds: run.session.reference_time(*z),
        cases,
        gflop: f.flops * cases as f64 / 1e9,
        device: run.session.reference_device.device,
        workers,
    })
    .collect()
}

/// A rebuilt original verified but not bit-identical, where two calls of fn itself were.
const NOT_IDENTICAL: &str = "(round trip verified but NOT bit-identical: MLX may pick other kernels for the same \
    values in another layout; where it persists on the CPU, a superopt bug: please report it)";

/// What the rebuilt original's verdicts say of the round trip; `varies`: two calls of `fn`
/// itself differed in rounding, so the rebuilt one may too.
fn round_trip_note(traced: &Entry, varies: bool) -> String {
    let identical = traced.verdicts.iter().all(|v| v.as_ref().is_some_and(|v| v.bit_identical));
    match (traced.dropped(), identical, varies) {
        (Some(why), _, _) => format!("(round trip failed: {why})"),
        (None, true, _) => "(round trip bit-identical at every size)".into(),
        (None, false, true) => "(round trip verified; not bit-identical, as fn itself is not from call to call)".into(),
        (None, false, false) => NOT_IDENTICAL.into(),
    }
}

fn why_no_win(entries: &[Entry], objective: Objective) -> String {
    let Some(best) = entries.iter().filter(|e| e.contends()).max_by(|a, b| a.score().total_cmp(&b.score())) else {
        return "no candidate passed verification".into();
    };
    let at = |z: &Size| match (best.runs_original[z.index()], best.dispatch[z.index()]) {
        (false, _) => String::new(),
        (true, None) => " (the original)".into(),
        (true, Some(s)) => format!(" (the original; choosing {})", superopt_report::format_seconds(s)),
    };
    let sizes: Vec<String> = best.timed().iter().map(|(z, t)| format!("{z} {:.2}x{}", t.speedup, at(z))).collect();
    let need = match objective {
        Objective::All => "faster by >3% at every size it changes, choosing costing <1% where it runs the original",
        Objective::Typical => "faster by >3% at typical and not slower elsewhere",
        Objective::Geomean => "a geomean speedup >3% and not slower anywhere",
    };
    format!("the best verified candidate, {}, was {} (needed: {need})", best.candidate.label(), sizes.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A verified entry with these speedups at small, typical, large (noise-free samples).
    fn entry(speedups: [f64; 3], runs_original: [bool; 3]) -> Entry {
        let mut e = Entry::verified_with(1, speedups);
        e.runs_original = runs_original;
        e
    }

    #[test]
    fn a_candidate_that_runs_the_original_where_nothing_is_faster_wins() {
        let mut entries = [entry([1.4, 1.1, 1.0], [false, false, true])];
        assert_eq!(pick_winner(&mut entries, Objective::All), Some(1));
        // Near misses: the same timings without the original at large; slower where it
        // runs the original; and the original everywhere.
        let mut entries = [entry([1.4, 1.1, 1.0], [false; 3])];
        assert_eq!(pick_winner(&mut entries, Objective::All), None);
        let mut entries = [entry([1.4, 1.1, 0.9], [false, false, true])];
        assert_eq!(pick_winner(&mut entries, Objective::All), None);
        let mut entries = [entry([1.0, 1.0, 1.0], [true; 3])];
        assert_eq!(pick_winner(&mut entries, Objective::All), None);
    }

    #[test]
    fn only_a_finalist_wins() {
        let mut entries = [entry([1.4, 1.4, 1.4], [false; 3])];
        entries[0].first_look_only = true;
        assert_eq!(pick_winner(&mut entries, Objective::All), None);
        entries[0].first_look_only = false;
        assert_eq!(pick_winner(&mut entries, Objective::All), Some(1));
    }

    #[test]
    fn where_it_runs_the_original_the_cost_of_choosing_decides() {
        // Timed 0.9x at large (noise: it runs the original there), choosing costs 0.5%.
        let mut entries = [entry([1.4, 1.1, 0.9], [false, false, true])];
        entries[0].dispatch[2] = Some(0.005 * 0.9);
        assert_eq!(pick_winner(&mut entries, Objective::All), Some(1));
        // Near miss: choosing costs 2% of the original's time.
        entries[0].dispatch[2] = Some(0.02 * 0.9);
        assert_eq!(pick_winner(&mut entries, Objective::All), None);
    }
}
