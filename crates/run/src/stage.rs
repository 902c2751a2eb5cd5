//! Stage 3: candidates emitted as modules and loaded into the worker. The traced program
//! and candidates with kernels to tune are loaded at once; the rest just before their
//! verification, so that those the budget never reaches cost nothing.

use crate::ledger::{CandidateId, Run};
use crate::propose::tunable;
use crate::session::Session;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use superopt_emit::{emit, ModuleInfo};
use superopt_ir::Program;
use superopt_search::Candidate;
use superopt_worker::protocol::ProgramId;
use superopt_worker::WorkerError;

/// The traced constants of every size, in the run's folder (see [`keep_constants`]).
pub const CONSTANTS: &str = "constants.safetensors";

/// Saves every traced constant of `traces` into `dir`'s [`CONSTANTS`] file, once for all
/// candidates (a real model's weights are gigabytes), kept across worker restarts.
pub fn keep_constants(s: &mut Session, traces: &[Program], dir: &Path) -> Result<(), WorkerError> {
    let keys: BTreeSet<String> = traces.iter().flat_map(|p| p.tensor_keys()).map(String::from).collect();
    if keys.is_empty() {
        return Ok(());
    }
    s.keep_constants(&keys.into_iter().collect::<Vec<_>>(), &dir.join(CONSTANTS))
}

/// Emits `c` into `dir` as the module of candidate `k` and loads it in the worker as `id`;
/// its constants are those [`keep_constants`] saved there.
pub fn stage_candidate(s: &mut Session, c: &Candidate, id: ProgramId, k: usize, dir: &Path) -> Result<(), String> {
    let path = write_candidate(s, c, k, dir)?;
    s.register(id, &path, "optimized").map_err(|e| format!("the emitted module does not load: {e}"))
}

/// Emits `c` into `dir` as the module of candidate `k`, its path. A module written before
/// with the same source is left as it is: its bytecode, which the first process to import
/// it cached (a few megabytes of source take a second to compile), stays valid.
fn write_candidate(s: &Session, c: &Candidate, k: usize, dir: &Path) -> Result<PathBuf, String> {
    let info = ModuleInfo { harness: &s.harness.to_string_lossy(), constants_file: CONSTANTS, notes: vec![] };
    let e = emit(c, &info).map_err(|e| e.to_string())?;
    let path = module_path(dir, k);
    write_if_changed(&path, &e.source).map_err(|e| e.to_string())?;
    Ok(path)
}

/// Writes `source` to `path` unless the file holds it already (its time then stays). A
/// file rewritten gets a time a whole second past its old one: Python trusts a cached
/// bytecode whose source has the same size and second (a tuned launch changes digits only).
fn write_if_changed(path: &Path, source: &str) -> std::io::Result<()> {
    let old = std::fs::read(path).ok();
    if old.as_deref() == Some(source.as_bytes()) {
        return Ok(());
    }
    let before = old.and_then(|_| std::fs::metadata(path).ok()?.modified().ok());
    std::fs::write(path, source)?;
    if let Some(before) = before {
        let second = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let now = std::fs::metadata(path)?.modified()?;
        if second(now) <= second(before) {
            let later = std::time::UNIX_EPOCH + std::time::Duration::from_secs(second(before) + 1);
            std::fs::File::options().write(true).open(path)?.set_modified(later)?;
        }
    }
    Ok(())
}

/// Where the module of the `k`-th candidate is written.
pub fn module_path(dir: &Path, k: usize) -> PathBuf {
    dir.join(format!("cand{k}.py"))
}

/// Stages entry `id`; a failure drops it.
pub fn stage(run: &mut Run, id: CandidateId) {
    let Run { session, entries, workdir, .. } = run;
    let e = &mut entries[id.0];
    match stage_candidate(session, &e.candidate, e.program(), id.0, workdir.path()) {
        Ok(()) => e.staged = true,
        Err(why) => e.drop_with(why),
    }
}

/// Writes entry `id`'s module for other processes, without loading it here (the verifier
/// does, when it comes to it); a failure to emit drops it.
pub fn write(run: &mut Run, id: CandidateId) -> Option<PathBuf> {
    let Run { session, entries, workdir, .. } = run;
    let e = &mut entries[id.0];
    write_candidate(session, &e.candidate, id.0, workdir.path()).map_err(|why| e.drop_with(why)).ok()
}

/// Stages the traced program and every candidate with kernels to tune. `Err` where the
/// traced program itself does not load: then nothing can be checked.
pub fn stage_first(run: &mut Run) -> Result<(), String> {
    run.say("emitting the traced program");
    stage(run, CandidateId::TRACED);
    if let Some(why) = run.entry(CandidateId::TRACED).dropped() {
        return Err(why.to_string());
    }
    for id in run.ids().into_iter().skip(1) {
        if tunable(&run.entry(id).candidate) {
            stage(run, id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_is_written_again_only_when_its_source_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = module_path(dir.path(), 3);
        let past = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let time = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
        write_if_changed(&path, "x = 1\n").unwrap();
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(past).unwrap();
        write_if_changed(&path, "x = 1\n").unwrap();
        assert_eq!(time(&path), past, "the same source leaves the file (and its cached bytecode) alone");
        write_if_changed(&path, "x = 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x = 2\n");
        assert_ne!(time(&path), past);
        // Rewritten within the same second (same size): its time moves to another second.
        let seconds = |p: &Path| time(p).duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let first = seconds(&path);
        write_if_changed(&path, "x = 3\n").unwrap();
        assert!(seconds(&path) > first, "Python would take the bytecode of x = 2 for x = 3");
    }
}
