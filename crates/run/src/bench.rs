//! Stage 7: the verified candidates timed against `fn`, interleaved, at every size.

use crate::ledger::{CandidateId, Run};
use std::collections::BTreeMap;
use std::time::Duration;
use superopt_bench::{compare, Size, MIN_SPEEDUP};
use superopt_worker::protocol::ProgramId;
use superopt_worker::WorkerError;

/// Times every verified candidate in what the budget leaves for timing.
pub fn bench(run: &mut Run) -> Result<(), WorkerError> {
    let contenders: Vec<CandidateId> = run.entries.iter().filter(|e| e.verified()).map(|e| e.id).collect();
    let budget = run.budget.bench_time();
    time(run, &contenders, budget)
}

/// Paired samples: `fn`'s and one program's, taken interleaved.
type Paired = (Vec<f64>, Vec<f64>);

/// Times `contenders` against `fn`, interleaved, at each size: half of `budget` for every
/// size, then a quarter for the sizes where a contender looks faster than the best
/// significant one without being significantly faster than `fn` (on a shared machine one
/// round's noise hides a 10% win); those contenders are judged on both rounds' samples.
/// The last quarter is left for a by-size candidate.
pub fn time(run: &mut Run, contenders: &[CandidateId], budget: Duration) -> Result<(), WorkerError> {
    if contenders.is_empty() {
        return Ok(());
    }
    let programs = contenders.iter().map(|k| run.entry(*k).program());
    let ids: Vec<ProgramId> = std::iter::once(ProgramId::Original).chain(programs).collect();
    let mut paired: BTreeMap<Size, Vec<Paired>> = BTreeMap::new();
    for size in Size::ALL {
        run.say(&format!("timing {} candidates at {size}", contenders.len()));
        let s = run.session.time(&ids, size, budget / (2 * Size::ALL.len() as u32))?;
        paired.insert(size, ids[1..].iter().map(|id| (s[&ProgramId::Original].clone(), s[id].clone())).collect());
    }
    let again: Vec<(Size, Vec<usize>)> =
        Size::ALL.into_iter().map(|z| (z, doubtful(&paired[&z]))).filter(|(_, d)| !d.is_empty()).collect();
    for (size, which) in &again {
        run.say(&format!("timing {} candidates at {size} again", which.len()));
        let round: Vec<ProgramId> =
            std::iter::once(ProgramId::Original).chain(which.iter().map(|k| ids[k + 1].clone())).collect();
        let more = run.session.time(&round, *size, budget / (4 * again.len() as u32))?;
        for k in which {
            let (baseline, samples) = &mut paired.get_mut(size).expect("timed")[*k];
            baseline.extend(&more[&ProgramId::Original]);
            samples.extend(&more[&ids[k + 1]]);
        }
    }
    for size in Size::ALL {
        for (k, (baseline, samples)) in contenders.iter().zip(&paired[&size]) {
            run.entry_mut(*k).timings[size.index()] = Some(compare(baseline, samples));
        }
    }
    Ok(())
}

/// The contenders (by index) that look faster than `fn` and than the best significantly
/// faster one, without being significantly faster themselves.
fn doubtful(paired: &[Paired]) -> Vec<usize> {
    let c: Vec<_> = paired.iter().map(|(b, s)| compare(b, s)).collect();
    let best = c.iter().filter(|c| c.significant).map(|c| c.speedup).fold(MIN_SPEEDUP, f64::max);
    (0..c.len()).filter(|k| c[*k].speedup >= best && !c[*k].significant).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_contenders_that_could_be_best_are_timed_again() {
        let noisy = (vec![1.2, 1.0, 1.2, 1.0], vec![0.9, 1.05, 0.9, 1.05]); // 1.13x, half the rounds faster
        let clear = (vec![1.0; 4], vec![0.95; 4]); // 1.05x, every round
        let slow = (vec![1.0; 4], vec![1.0; 4]);
        assert_eq!(doubtful(&[noisy.clone(), clear.clone(), slow.clone()]), vec![0]);
        assert_eq!(doubtful(&[clear.clone(), slow]), Vec::<usize>::new(), "nothing in doubt");
        let behind = (vec![1.2, 1.0, 1.2, 1.0], vec![1.1, 1.05, 1.1, 1.05]); // 1.04x: behind `clear`
        assert_eq!(doubtful(&[behind, clear]), Vec::<usize>::new());
    }
}
