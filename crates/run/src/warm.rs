//! Beside stages 4-6 (CUDA): fn's and each candidate's first calls, made ahead of
//! verification by workers of their own.
//!
//! MLX's CUDA backend compiles a kernel at its first use (NVRTC) and keeps it in a disk
//! cache that later processes read. A compiled candidate of a few thousand nodes compiles
//! hundreds of kernels: its first call took 51 s on an H100 (`gated_delta_chunked`), and
//! the verifying worker paid that candidate after candidate until the budget ran out. Warm
//! workers (a few, beside the reference pool) take the candidates in verification order
//! once tuning (which times launches) is over, call each once at the small size (at every
//! size where its program differs by size: an unrolled loop compiles anew), and publish the
//! kernels compiled into the shared cache. Before each call a warm worker takes from that
//! cache the kernels other processes compiled (its own folder would otherwise start empty,
//! and it compiled `fn`'s kernels again for every candidate: 51-62 s a first call on an
//! H200, `moe_block_decode`).
//! The verifier does not start a candidate's size a warm worker is calling (it takes
//! another, or waits), and takes back one no warm worker has started. They start with the
//! run: while the trace calls `fn` at small, they call it at typical and large (a larger
//! size can take other kernels: mlx-lm's SwitchGLU sorts its indices from 64 of them).

use crate::ledger::{CandidateId, Run};
use crate::session::Session;
use crate::stage::{module_path, write};
use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use superopt_worker::protocol::{Backend, Load, LoadProgram, ProgramId, Size, Warm};
use superopt_worker::{Worker, WorkerError};

/// How many warm workers: set by `SUPEROPT_WARM_WORKERS` (0: none); else a quarter of the
/// cores (1 to 4) on CUDA, where a first call's kernels were measured to serve every later
/// process (31 s in the first, 0.2 s in the next), and none elsewhere.
pub fn workers(backend: Backend) -> usize {
    let asked = std::env::var("SUPEROPT_WARM_WORKERS").ok().and_then(|v| v.parse::<usize>().ok());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match asked {
        Some(n) => n,
        None if backend == Backend::Cuda => (cores / 4).clamp(1, 4),
        None => 0,
    }
}

/// A program to call once at a size: its place in verification order, candidate (none:
/// `fn` itself), program id and module.
#[derive(Clone, Debug)]
struct Job {
    rank: usize,
    id: Option<CandidateId>,
    size: Size,
    program: ProgramId,
    path: PathBuf,
}

/// A first call made: the candidate (none: `fn`) and size, its seconds, the kernel files
/// it published, the kernels it took from the shared cache first.
#[derive(Clone, Copy, Debug)]
pub struct Warmed {
    pub id: Option<CandidateId>,
    pub size: Size,
    pub seconds: f64,
    pub published: usize,
    pub seeded: usize,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// No job will be added.
    closed: bool,
    /// Stopped: no job starts.
    stopped: bool,
    /// Candidates and sizes warm workers are calling now, with their process ids.
    running: Vec<(Option<CandidateId>, Size, u32)>,
    done: Vec<Warmed>,
    troubles: Vec<String>,
}

pub struct Warmers {
    pub workers: usize,
    shared: Arc<(Mutex<State>, Condvar)>,
}

impl Warmers {
    /// Starts `workers` workers on `harness` with `python`; none works past `deadline`,
    /// and no call takes more than `timeout`.
    pub fn start(python: PathBuf, harness: String, workers: usize, deadline: Instant, timeout: Duration) -> Warmers {
        let shared: Arc<(Mutex<State>, Condvar)> = Arc::default();
        for _ in 0..workers {
            let (python, harness, shared) = (python.clone(), harness.clone(), shared.clone());
            std::thread::spawn(move || serve(&python, &harness, &shared, deadline, timeout));
        }
        Warmers { workers, shared }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, jobs: Vec<Job>, close: bool) {
        let mut s = self.state();
        s.queue.extend(jobs);
        s.queue.make_contiguous().sort_by_key(|j| (j.rank, j.size));
        s.closed |= close;
        drop(s);
        self.shared.1.notify_all();
    }

    /// Whether the verifier may start `id` at `size` now: no warm worker is calling it
    /// there (one that has not started it will not).
    pub fn claim(&self, id: CandidateId, size: Size) -> bool {
        let mut s = self.state();
        s.queue.retain(|j| (j.id, j.size) != (Some(id), size));
        !s.running.iter().any(|r| (r.0, r.1) == (Some(id), size))
    }

    /// Drops `id`'s calls not started (it is out of the run).
    pub fn forget(&self, id: CandidateId) {
        self.state().queue.retain(|j| j.id != Some(id));
    }

    /// Whether a warm worker is calling `id` at `size` now.
    pub fn calling(&self, id: CandidateId, size: Size) -> bool {
        self.state().running.iter().any(|r| (r.0, r.1) == (Some(id), size))
    }

    /// Whether a warm worker has made `id`'s first call at `size`.
    pub fn warmed(&self, id: CandidateId, size: Size) -> bool {
        self.state().done.iter().any(|w| (w.id, w.size) == (Some(id), size))
    }

    /// Waits up to `deadline` for a warm worker to finish a call.
    pub fn wait(&self, deadline: Instant) {
        let s = self.state();
        let ended = |s: &State| s.done.len() + s.troubles.len();
        let (before, left) = (ended(&s), deadline.saturating_duration_since(Instant::now()));
        let _ = self.shared.1.wait_timeout_while(s, left, |s| ended(s) == before && !s.stopped);
    }

    /// Starts no more calls and ends those running (timing follows: nothing may compete).
    pub fn stop(&self) {
        let mut s = self.state();
        s.stopped = true;
        s.queue.clear();
        s.running.iter().for_each(|(_, _, pid)| superopt_worker::kill(*pid));
        drop(s);
        self.shared.1.notify_all();
    }

    /// What the warm workers did, for the run's notes (none: they did nothing).
    pub fn said(&self) -> Option<String> {
        let s = self.state();
        let mut seconds: Vec<f64> = s.done.iter().map(|w| w.seconds).collect();
        seconds.sort_by(f64::total_cmp);
        let troubles = s.troubles.iter().collect::<BTreeSet<_>>();
        let trouble = troubles.iter().map(|t| format!("; {t}")).collect::<String>();
        let (first, last) = (seconds.first()?, seconds.last()?);
        let files: usize = s.done.iter().map(|w| w.published).sum();
        let seeded: usize = s.done.iter().map(|w| w.seeded).sum();
        Some(format!(
            "{} first calls of fn and candidates (the kernels they compile) made ahead by {} warm workers: \
             {first:.1}-{last:.1}s each, {files} kernel files published, {seeded} kernels taken from the shared \
             cache{trouble}",
            seconds.len(),
            self.workers
        ))
    }
}

impl Drop for Warmers {
    /// A run that ends early (a failed trace, nothing to verify) leaves no worker behind.
    fn drop(&mut self) {
        self.stop();
    }
}

/// One warm worker: loads the harness, then calls each job it takes once, until the
/// queue is closed and empty, the warmers stop, the deadline passes, or the worker dies or
/// hangs (a candidate that crashes it is the verifier's to judge); a candidate that raises
/// is passed over. A call takes at most `timeout` (the run's request timeout).
fn serve(
    python: &std::path::Path,
    harness: &str,
    shared: &(Mutex<State>, Condvar),
    deadline: Instant,
    timeout: Duration,
) {
    let left = || deadline.saturating_duration_since(Instant::now()).min(timeout);
    let trouble = |what: String| {
        if let Ok(mut s) = shared.0.lock() {
            s.troubles.push(what);
        }
    };
    let Ok(own) = tempfile::tempdir() else { return };
    let env = [("MLX_PTX_CACHE_DIR".to_string(), own.path().to_string_lossy().into_owned())];
    let shared_cache = std::env::var("MLX_PTX_CACHE_DIR").ok().map(|d| ("SUPEROPT_SHARED_KERNEL_CACHE".into(), d));
    let mut w = match Worker::start_with(python, env.into_iter().chain(shared_cache).collect(), false) {
        Ok(w) => w,
        Err(e) => return trouble(format!("a warm worker did not start: {e}")),
    };
    if let Err(e) = w.call(&Load { harness: harness.into(), references: None }, left()) {
        return trouble(format!("a warm worker did not load the harness: {e}"));
    }
    while let Some(job) = take(shared, w.pid(), deadline) {
        let path = job.path.to_string_lossy().into_owned();
        let load = LoadProgram { id: job.program.clone(), path, entry: "optimized".into() };
        let loaded = if job.id.is_some() { w.call(&load, left()).map(|_| ()) } else { Ok(()) };
        let got = loaded.and_then(|_| w.call(&Warm { program: job.program, size: job.size }, left()));
        let mut s = shared.0.lock().unwrap_or_else(|e| e.into_inner());
        s.running.retain(|r| (r.0, r.1) != (job.id, job.size));
        let gone = matches!(got, Err(WorkerError::Stopped(_) | WorkerError::Crashed(_) | WorkerError::TimedOut(_)));
        match got {
            Ok(r) => {
                let (seconds, published, seeded) = (r.seconds, r.published, r.seeded);
                s.done.push(Warmed { id: job.id, size: job.size, seconds, published, seeded })
            }
            // Killed by `stop`: nothing went wrong.
            Err(_) if s.stopped => {}
            Err(e) => s.troubles.push(format!("a first call failed ({e})")),
        }
        drop(s);
        shared.1.notify_all();
        if gone {
            return;
        }
    }
}

/// The next job, marked running under `pid`; waits while the queue is empty but open.
fn take(shared: &(Mutex<State>, Condvar), pid: u32, deadline: Instant) -> Option<Job> {
    let mut s = shared.0.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if s.stopped || Instant::now() > deadline {
            return None;
        }
        if let Some(job) = s.queue.pop_front() {
            s.running.push((job.id, job.size, pid));
            return Some(job);
        }
        if s.closed {
            return None;
        }
        let left = deadline.saturating_duration_since(Instant::now()).min(Duration::from_secs(1));
        s = shared.1.wait_timeout(s, left).map(|(s, _)| s).unwrap_or_else(|e| e.into_inner().0);
    }
}

/// Starts the warm workers (where [`workers`] gives any) on `fn` at typical and large, for
/// the trace; none works past `deadline` (the latest the verification can end).
pub fn for_trace(session: &Session, deadline: Instant) -> Option<Warmers> {
    let n = workers(session.backend());
    if n == 0 {
        return None;
    }
    let (python, harness) = (session.worker.python().to_path_buf(), session.harness.to_string_lossy());
    let w = Warmers::start(python, harness.into_owned(), n, deadline, session.timeout);
    let job = |size| Job { rank: 0, id: None, size, program: ProgramId::Original, path: PathBuf::new() };
    w.push(vec![job(Size::Typical), job(Size::Large)], false);
    Some(w)
}

/// Hands the warm workers every candidate, in verification order, once tuning has emitted
/// those with kernels again (tuning times launches: no first call competes with it).
pub fn start(run: &mut Run) {
    if run.warm.is_none() {
        return;
    }
    let order = crate::verify::order(run);
    push(run, order);
}

/// Writes the modules of `order` (the traced program aside: the verifier calls it first)
/// and queues them in that order, closing the queue.
fn push(run: &mut Run, order: Vec<CandidateId>) {
    let mut jobs = vec![];
    for (rank, id) in order.into_iter().enumerate().filter(|(_, id)| *id != CandidateId::TRACED) {
        let path = if run.entry(id).staged { Some(module_path(run.workdir.path(), id.0)) } else { write(run, id) };
        let e = run.entry(id);
        if let Some(path) = path.filter(|_| !e.is_dropped()) {
            let sizes = if per_size(e) { &Size::ALL[..] } else { &Size::ALL[..1] };
            let job = |size: &Size| Job { rank, id: Some(id), size: *size, program: e.program(), path: path.clone() };
            jobs.extend(sizes.iter().map(job));
        }
    }
    if let Some(w) = &run.warm {
        w.push(jobs, true);
    }
}

/// Whether `e`'s program differs by size (its sizes' first calls compile kernels anew).
pub fn per_size(e: &crate::ledger::Entry) -> bool {
    e.candidate.plan.variants.len() > 1
}

/// Stops the warm workers and notes what they did.
pub fn stop(run: &mut Run) {
    let Some(w) = &run.warm else { return };
    w.stop();
    if let Some(said) = w.said() {
        run.notes.push(said);
    }
    let done = w.state().done.clone();
    for d in done {
        if let Some(id) = d.id {
            run.entry_mut(id).warm_s[d.size.index()] = Some(d.seconds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warmers() -> Warmers {
        Warmers { workers: 1, shared: Arc::default() }
    }

    fn job(k: usize, size: Size) -> Job {
        let program = ProgramId::Candidate(format!("c{k}"));
        Job { rank: k, id: Some(CandidateId(k)), size, program, path: PathBuf::new() }
    }

    #[test]
    fn the_verifier_takes_back_a_queued_candidate_but_not_a_running_one() {
        let (small, typical) = (Size::Small, Size::Typical);
        let w = warmers();
        w.push(vec![job(3, small)], false);
        w.push(vec![job(1, typical), job(1, small), job(2, small)], true);
        let far = Instant::now() + Duration::from_secs(5);
        let first = take(&w.shared, 7, far).unwrap();
        assert_eq!(
            (first.id, first.size),
            (Some(CandidateId(1)), small),
            "a later push goes where it ranks, small first"
        );
        assert!(!w.claim(CandidateId(1), small), "a warm worker is calling it: wait or take another");
        assert!(w.calling(CandidateId(1), small) && !w.calling(CandidateId(1), typical));
        assert!(w.claim(CandidateId(1), typical), "not started: the verifier takes it back");
        assert!(w.claim(CandidateId(2), small));
        assert_eq!(take(&w.shared, 7, far).unwrap().id, Some(CandidateId(3)), "taken back, it is not called");
        assert!(w.claim(CandidateId(9), small), "a candidate no warm worker has");
    }

    #[test]
    fn a_closed_empty_queue_ends_the_workers_and_stop_ends_an_open_one() {
        let w = warmers();
        w.push(vec![], true);
        assert!(take(&w.shared, 7, Instant::now() + Duration::from_secs(5)).is_none());
        let open = warmers();
        open.push(vec![job(1, Size::Small)], false);
        open.stop();
        assert!(take(&open.shared, 7, Instant::now() + Duration::from_secs(5)).is_none());
    }

    #[test]
    fn the_note_says_how_many_first_calls_and_how_long() {
        let w = warmers();
        assert_eq!(w.said(), None, "nothing done: nothing to say");
        w.state().done.push(Warmed { id: None, size: Size::Small, seconds: 3.0, published: 4, seeded: 0 });
        let large = Warmed { id: Some(CandidateId(2)), size: Size::Large, seconds: 40.0, published: 90, seeded: 7 };
        w.state().done.push(large);
        assert!(w.warmed(CandidateId(2), Size::Large) && !w.warmed(CandidateId(2), Size::Small));
        let said = w.said().unwrap();
        assert!(said.starts_with("2 first calls of fn and candidates"), "{said}");
        assert!(said.contains("3.0-40.0s each, 94 kernel files published, 7 kernels taken from the shared"), "{said}");
    }
}
