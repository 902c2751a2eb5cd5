//! Stage 7: the verified candidates timed against `fn`, interleaved, at every size.
//!
//! Two looks: the first times every verified candidate; the finalists it picks are timed
//! again, with fresh samples, and only those decide. Picking the best of many noisy
//! speedups and keeping its samples would overstate it; timing fewer programs in the
//! second look also gives each more samples.

use crate::budget::Budget;
use crate::ledger::{CandidateId, Entry, Run};
use crate::session::Sampling;
use std::time::{Duration, Instant};
use superopt_bench::{compare, Size};
use superopt_worker::protocol::ProgramId;
use superopt_worker::WorkerError;

/// At most this many candidates are timed in the second look.
pub const FINALISTS: usize = 5;

/// Times every verified candidate in what the budget leaves for timing: a share for the
/// first look, the rest for the finalists, but a share for a by-size candidate where the
/// first look makes one likely.
pub fn bench(run: &mut Run) -> Result<(), WorkerError> {
    let contenders: Vec<CandidateId> = run.entries.iter().filter(|e| e.verified_somewhere()).map(|e| e.id).collect();
    let budget = run.budget.bench_time();
    if contenders.len() <= FINALISTS {
        return time(run, &contenders, budget.mul_f64(1.0 - Budget::BY_SIZE), Sampling::Decide);
    }
    let end = Instant::now() + budget;
    time(run, &contenders, budget.mul_f64(Budget::FIRST_LOOK), Sampling::Steady)?;
    let finalists = finalists(&run.entries, &contenders);
    for k in contenders.iter().filter(|k| !finalists.contains(k)) {
        run.entry_mut(*k).first_look_only = true;
    }
    let share = if crate::by_size::likely(run) { 1.0 - Budget::BY_SIZE } else { 1.0 };
    run.say(&format!("second look: {} finalists", finalists.len()));
    time(run, &finalists, end.saturating_duration_since(Instant::now()).mul_f64(share), Sampling::Decide)
}

/// The finalists of the first look: the fastest at each size (where it beats the original),
/// `mx.compile` of the traced program (the baseline a user would try first), the best
/// geometric mean, then, where one verified at some sizes only (the budget ran out) is the
/// fastest at a size, it too (it may run there in a by-size candidate); at most
/// [`FINALISTS`], in that order.
pub fn finalists(entries: &[Entry], contenders: &[CandidateId]) -> Vec<CandidateId> {
    let all: Vec<&Entry> = contenders.iter().map(|k| &entries[k.0]).collect();
    let timed: Vec<&Entry> = all.iter().copied().filter(|e| e.timed().len() == 3).collect();
    let speedup = |e: &Entry, z: usize| e.timings[z].as_ref().map_or(0.0, |t| t.speedup);
    let best_of =
        |es: &[&Entry], key: &dyn Fn(&Entry) -> f64| es.iter().max_by(|a, b| key(a).total_cmp(&key(b))).map(|e| e.id);
    let faster_of =
        |es: &[&Entry], z: usize| best_of(es, &|e: &Entry| speedup(e, z)).filter(|k| speedup(&entries[k.0], z) > 1.0);
    let per_size = (0..Size::ALL.len()).filter_map(|z| faster_of(&timed, z));
    let compiled = timed.iter().find(|e| crate::verify::compiles_the_trace(&e.candidate)).map(|e| e.id);
    let overall = best_of(&timed, &|e: &Entry| e.score());
    let partial = (0..Size::ALL.len()).filter_map(|z| faster_of(&all, z));
    let mut picked: Vec<CandidateId> = vec![];
    for k in per_size.chain(compiled).chain(overall).chain(partial) {
        if !picked.contains(&k) && picked.len() < FINALISTS {
            picked.push(k);
        }
    }
    picked
}

/// Times `contenders` against `fn`, interleaved, at each size where they are verified
/// ([`Entry::verified_at`]), in `budget` in all.
pub fn time(run: &mut Run, contenders: &[CandidateId], budget: Duration, until: Sampling) -> Result<(), WorkerError> {
    for size in Size::ALL {
        let here: Vec<CandidateId> = contenders.iter().copied().filter(|k| run.entry(*k).verified_at(size)).collect();
        if here.is_empty() {
            continue;
        }
        let programs = here.iter().map(|k| run.entry(*k).program());
        let ids: Vec<ProgramId> = std::iter::once(ProgramId::Original).chain(programs).collect();
        run.say(&format!("timing {} candidates at {size}", here.len()));
        let samples = run.session.time(&ids, size, budget / Size::ALL.len() as u32, until)?;
        for (k, id) in here.iter().zip(&ids[1..]) {
            run.entry_mut(*k).timings[size.index()] = Some(compare(&samples[&ProgramId::Original], &samples[id]));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use superopt_search::Compile;

    fn entry(k: usize, speedups: [f64; 3]) -> Entry {
        Entry::verified_with(k, speedups)
    }

    #[test]
    fn the_fastest_at_each_size_the_best_overall_and_compile_go_on() {
        let mut entries = vec![
            entry(0, [1.0, 1.0, 1.0]),
            entry(1, [2.0, 1.0, 1.0]),
            entry(2, [1.0, 1.9, 1.0]),
            entry(3, [1.1, 1.1, 1.1]),
            entry(4, [1.4, 1.4, 1.4]),
            entry(5, [1.2, 1.2, 1.2]),
        ];
        entries[3].candidate.compile = Compile::Whole;
        let all: Vec<CandidateId> = entries.iter().map(|e| e.id).collect();
        // Large's fastest is the best overall (4); compile (3) is kept although slower than 5.
        let ids = |v: &[usize]| v.iter().map(|k| CandidateId(*k)).collect::<Vec<_>>();
        assert_eq!(finalists(&entries, &all), ids(&[1, 2, 4, 3]));
        // A size where nothing beats the original gives no finalist.
        for e in entries.iter_mut() {
            e.timings[2] = Some(compare(&[0.9; 8], &[1.0; 8]));
        }
        assert_eq!(finalists(&entries, &all), ids(&[1, 2, 3]));
        // One timed at small only (verified there only) and fastest there comes after the
        // others, where there is room: a by-size candidate may run it there; it does not
        // push out small's fastest verified everywhere.
        entries[5].timings = [Some(compare(&[9.0; 8], &[1.0; 8])), None, None];
        assert_eq!(finalists(&entries, &all), ids(&[1, 2, 3, 5]));
        entries[2].candidate.compile = Compile::Whole;
        entries[3].candidate.compile = Compile::Eager;
        assert_eq!(finalists(&entries, &all), ids(&[1, 2, 5]));
    }
}
