//! Stage 7: the verified candidates timed against `fn`, interleaved, at every size.

use crate::ledger::{CandidateId, Run};
use std::time::Duration;
use superopt_bench::{compare, Size};
use superopt_worker::protocol::ProgramId;
use superopt_worker::WorkerError;

/// Times every verified candidate in what the budget leaves for timing.
pub fn bench(run: &mut Run) -> Result<(), WorkerError> {
    let contenders: Vec<CandidateId> = run.entries.iter().filter(|e| e.verified()).map(|e| e.id).collect();
    let budget = run.budget.bench_time();
    time(run, &contenders, budget)
}

/// Times `contenders` against `fn`, interleaved, at each size, in `budget` in all.
pub fn time(run: &mut Run, contenders: &[CandidateId], budget: Duration) -> Result<(), WorkerError> {
    if contenders.is_empty() {
        return Ok(());
    }
    let programs = contenders.iter().map(|k| run.entry(*k).program());
    let ids: Vec<ProgramId> = std::iter::once(ProgramId::Original).chain(programs).collect();
    for size in Size::ALL {
        run.say(&format!("timing {} candidates at {size}", contenders.len()));
        let samples = run.session.time(&ids, size, budget / Size::ALL.len() as u32)?;
        for (k, id) in contenders.iter().zip(&ids[1..]) {
            run.entry_mut(*k).timings[size.index()] = Some(compare(&samples[&ProgramId::Original], &samples[id]));
        }
    }
    Ok(())
}
