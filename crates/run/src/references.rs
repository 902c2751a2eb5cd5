//! The float64 references, computed ahead of verification by a pool of workers.
//!
//! MLX's CPU runs a float64 graph on one core, so one worker computing a real model's
//! references takes minutes. The pool starts with the run: one worker per core, each
//! loading the harness as the verifying worker does (a real model's harness takes tens of
//! seconds, which the trace's time covers); from the trace on ([`Pool::release`]) each
//! computes one case at a time into
//! the session's reference folder, where the verifying worker reads it. Cases go out size
//! by size, small first, so that a deadline that cuts the pool short costs the largest
//! size. The first case of each size runs alone and measures the memory a case of that
//! size holds; then as many run at once as the memory free at the start holds (a real
//! model's float64 case can hold tens of GiB). A case the pool did not do is computed by
//! the verifying worker when it is first needed.

use crate::session::cases;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use superopt_worker::protocol::{Backend, Case, Load, Prepare, Size};
use superopt_worker::Worker;

/// The share of the memory free at the start that the pool's cases may hold together.
const MEMORY_SHARE: f64 = 0.8;
/// A case's measured peak memory, with room for what one case holds more than another.
const MEMORY_MARGIN: f64 = 1.25;
/// A size not measured yet, estimated from a smaller one: room for what the estimate misses.
const ESTIMATE_MARGIN: f64 = 2.0;
/// A size with no measurement at all, estimated from its traced program: bytes per element
/// of its values (float64's 8, four times over: copies, numpy's and MLX's).
const BYTES_PER_ELEMENT: f64 = 32.0;
/// Cases estimated from the trace start together, without a first case alone, only where
/// a case in every worker would hold at most this share of the pool's memory.
const TRACE_ESTIMATE_SHARE: f64 = 0.5;

/// What the pool's workers start from.
#[derive(Clone, Debug)]
pub struct PoolSpec {
    pub python: PathBuf,
    pub harness: String,
    /// The session's reference folder.
    pub folder: String,
}

/// A case the pool is through with: when (since the pool started) it began and ended, and
/// whether its reference is in the folder now (if not, the verifying worker computes it).
struct Done {
    size: Size,
    case: Case,
    began: Duration,
    ended: Duration,
    kept: bool,
}

/// The pool's work on one size: from its first case's start to its last case's end.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Span {
    pub seconds: f64,
    pub cases: usize,
}

pub struct Pool {
    pub workers: usize,
    expected: usize,
    done: Vec<Done>,
    rx: Receiver<Done>,
    /// Every worker has stopped: nothing more will come.
    closed: bool,
    queue: Arc<(Mutex<Admission>, Condvar)>,
    /// Cases taken back for the verifying worker ([`Pool::claim`]).
    claimed: Vec<(Size, Case)>,
    /// The processes of the workers computing a case or loading the harness now.
    busy: Busy,
    /// What went wrong in the workers (a harness that did not load, a case that failed).
    troubles: Troubles,
    /// When (seconds since the pool started) each worker had loaded the harness.
    loads: Loads,
}

/// Seconds since the pool started at which workers had loaded the harness.
type Loads = Arc<Mutex<Vec<f64>>>;

/// What the pool's workers share: the admission, and what they report.
type Shared = (Arc<(Mutex<Admission>, Condvar)>, Busy, Troubles, Loads);

/// What went wrong in the pool's workers, one line each time.
type Troubles = Arc<Mutex<Vec<String>>>;

/// Process ids of the pool's workers in the middle of a case or loading the harness.
type Busy = Arc<Mutex<Vec<u32>>>;

/// The pool's size for `cases` cases: set by `SUPEROPT_REFERENCE_WORKERS` (0: no pool);
/// else none on the CPU backend, where it would only compete with the candidates, and
/// otherwise [`pool_size`].
pub fn workers(backend: Backend, cases: usize) -> usize {
    let asked = std::env::var("SUPEROPT_REFERENCE_WORKERS").ok().and_then(|v| v.parse::<usize>().ok());
    match asked {
        Some(n) => n.min(cases),
        None if backend == Backend::Cpu => 0,
        None => pool_size(cases),
    }
}

/// Workers for `cases` cases: one per core (memory decides how many run at once).
pub fn pool_size(cases: usize) -> usize {
    cases.min(cores()).max(1)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn available_gib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib >> 20)
}

/// Per size, the elements of every value of `fn`'s traced program there (`traces` in
/// [`Size::ALL`]'s order): what a case's float64 reference holds grows with it. A quantized
/// matmul's packed weight counts as the eight values a 4-bit word holds (its reference
/// dequantizes it whole).
pub fn scale(traces: &[superopt_ir::Program]) -> BTreeMap<Size, f64> {
    let unpacked = |p: &superopt_ir::Program| {
        let packed = p.nodes.iter().filter(|n| n.op == superopt_ir::Op::QuantizedMatmul);
        packed.filter_map(|n| n.inputs.get(1)).map(|w| 7.0 * p.value(*w).numel() as f64).sum::<f64>()
    };
    let elements = |p: &superopt_ir::Program| p.values.iter().map(|v| v.numel() as f64).sum::<f64>() + unpacked(p);
    Size::ALL.iter().zip(traces).map(|(z, p)| (*z, elements(p))).collect()
}

/// The sizes (`traces` in [`Size::ALL`]'s order) whose traced program makes no discrete
/// choice (argmax, argsort, argpartition): their references replay none.
pub fn choiceless(traces: &[superopt_ir::Program]) -> Vec<Size> {
    let chooses = |p: &superopt_ir::Program| p.nodes.iter().any(|n| n.op.is_choice());
    Size::ALL.iter().zip(traces).filter(|(_, p)| !chooses(p)).map(|(z, _)| *z).collect()
}

/// Every size's verification cases, small first.
pub fn all_cases(seeds: &[u64]) -> Vec<(Size, Case)> {
    Size::ALL.iter().flat_map(|z| cases(seeds).into_iter().map(move |c| (*z, c))).collect()
}

impl Pool {
    /// Starts `workers` workers loading the harness for every size's cases of `seeds`; none
    /// starts a case before [`Pool::release`] or works past `deadline`.
    pub fn start(spec: &PoolSpec, seeds: &[u64], workers: usize, deadline: Instant) -> Pool {
        let queue: VecDeque<(Size, Case)> = all_cases(seeds).into();
        let expected = queue.len();
        let free = available_gib().map_or(f64::INFINITY, |g| g as f64 * MEMORY_SHARE);
        let (need, scale) = (BTreeMap::new(), BTreeMap::new());
        let (cores, total) = (cores(), free);
        let (held, choiceless) = (true, vec![]);
        let admission =
            Admission { queue, free, total, running: 0, need, scale, cores, workers, started: 0, held, choiceless };
        let queue = Arc::new((Mutex::new(admission), Condvar::new()));
        let kept = queue.clone();
        let (tx, rx) = mpsc::channel();
        let started = Instant::now();
        // numpy's BLAS in each worker starts with its share of the cores; each case then
        // gets as many as the cases running with it leave (Start::threads).
        let blas = (cores / workers).max(1).to_string();
        let env: Vec<(String, String)> = ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"]
            .iter()
            .map(|k| (k.to_string(), blas.clone()))
            .collect();
        let (busy, troubles, loads): (Busy, Troubles, Loads) = Default::default();
        for _ in 0..workers {
            let (spec, queue, tx, env) = (spec.clone(), queue.clone(), tx.clone(), env.clone());
            let shared = (queue, busy.clone(), troubles.clone(), loads.clone());
            std::thread::spawn(move || serve(&spec, env, &shared, &tx, started, deadline));
        }
        let (done, claimed) = (vec![], vec![]);
        Pool { workers, expected, done, rx, closed: false, queue: kept, claimed, busy, troubles, loads }
    }

    /// Lets the workers start cases. `scale`: per size, what `fn` holds there (e.g. its
    /// traced program's elements), where known; it lets a larger size start from a smaller
    /// one's measurement. `choiceless`: the sizes whose traces make no discrete choice (see
    /// [`Prepare::choices`]).
    pub fn release(&mut self, scale: BTreeMap<Size, f64>, choiceless: Vec<Size>) {
        if let Ok(mut a) = self.queue.0.lock() {
            (a.scale, a.held, a.choiceless) = (scale, false, choiceless);
        }
        self.queue.1.notify_all();
    }

    /// Waits until every case is done, every worker has stopped, or `deadline`; whether
    /// every case is done.
    pub fn wait(&mut self, deadline: Instant) -> bool {
        while !self.finished() && self.next(deadline) {}
        self.all_kept()
    }

    /// Waits for the next case the pool is through with, up to `deadline`; whether one came.
    pub fn next(&mut self, deadline: Instant) -> bool {
        match self.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(d) => self.done.push(d),
            Err(mpsc::RecvTimeoutError::Disconnected) => self.closed = true,
            Err(mpsc::RecvTimeoutError::Timeout) => return false,
        }
        !self.closed
    }

    /// Takes in what the workers have finished so far, without waiting.
    pub fn drain(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(d) => self.done.push(d),
                Err(e) => {
                    self.closed |= e == mpsc::TryRecvError::Disconnected;
                    return;
                }
            }
        }
    }

    /// Nothing more will come: every case is through, or every worker has stopped.
    pub fn finished(&self) -> bool {
        self.closed || self.done.len() >= self.expected
    }

    /// Whether the pool is through with `case` of `size` (or with everything), or gave it
    /// back: its reference is in the folder, or the verifying worker computes it.
    pub fn through(&self, size: Size, case: Case) -> bool {
        self.finished()
            || self.claimed.contains(&(size, case))
            || self.done.iter().any(|d| d.size == size && d.case == case)
    }

    /// Takes `case` of `size` back from the pool while none of its workers has started a
    /// case yet (they are still loading the harness, or held): the verifying worker computes it
    /// then, instead of waiting. Whether it was taken back.
    pub fn claim(&mut self, size: Size, case: Case) -> bool {
        let Ok(mut a) = self.queue.0.lock() else { return false };
        let at = a.queue.iter().position(|c| *c == (size, case));
        match at {
            Some(k) if a.started == 0 => {
                a.queue.remove(k);
                self.expected -= 1;
                self.claimed.push((size, case));
                true
            }
            _ => false,
        }
    }

    /// Starts no more cases and ends those running or loading the harness (their workers'
    /// processes are killed, so that no float64 case competes with the timing that follows).
    pub fn stop(&mut self) {
        if let Ok(mut a) = self.queue.0.lock() {
            a.queue.clear();
        }
        self.queue.1.notify_all();
        self.busy.lock().map(|b| b.clone()).unwrap_or_default().into_iter().for_each(superopt_worker::kill);
    }

    /// Whether every case's reference is in the folder.
    pub fn all_kept(&self) -> bool {
        self.done.iter().filter(|d| d.kept).count() == self.expected
    }

    /// How far the pool has got: cases kept of those it had, cases started, when the
    /// first case done began, and when the workers had loaded the harness.
    pub fn progress(&mut self) -> String {
        self.drain();
        let kept = self.done.iter().filter(|d| d.kept).count();
        let started = self.queue.0.lock().map_or(0, |a| a.started);
        let first = self.done.iter().map(|d| d.began).min();
        let first = first.map_or(String::new(), |b| format!(", the first done began {}s in", b.as_secs()));
        let loads = self.loads.lock().map(|l| l.clone()).unwrap_or_default();
        format!("{kept} of {} cases kept, {started} started{first}{}", self.expected, loaded(&loads, self.workers))
    }

    /// What went wrong in the workers so far, each told once (with how many times).
    pub fn troubles(&self) -> Vec<String> {
        let all = self.troubles.lock().map(|t| t.clone()).unwrap_or_default();
        let mut out: Vec<(String, usize)> = vec![];
        for t in all {
            match out.iter_mut().find(|(u, _)| *u == t) {
                Some((_, n)) => *n += 1,
                None => out.push((t, 1)),
            }
        }
        out.into_iter().map(|(t, n)| if n > 1 { format!("{t} (x{n})") } else { t }).collect()
    }

    /// Per size, the span of the cases the pool has done so far.
    pub fn spans(&self) -> BTreeMap<Size, Span> {
        let mut out = BTreeMap::new();
        for z in Size::ALL {
            let of: Vec<&Done> = self.done.iter().filter(|d| d.size == z && d.kept).collect();
            let (Some(began), Some(ended)) = (of.iter().map(|d| d.began).min(), of.iter().map(|d| d.ended).max())
            else {
                continue;
            };
            out.insert(z, Span { seconds: (ended - began).as_secs_f64(), cases: of.len() });
        }
        out
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop(); // workers still loading or held end with the run
    }
}

/// Which case may start, by memory: the first case alone (it measures what a case of its
/// size holds), then as many as the free memory holds. A larger size starts from the
/// smaller one's measurement scaled by `scale` (doubled) until one of its own cases is
/// measured; without a scale, its first case runs alone too. Where the traced program is
/// small (a case per worker holds at most [`TRACE_ESTIMATE_SHARE`] of the memory, estimated
/// from `scale` in elements), the first cases start together: a real model's weights make
/// its first case alone as long as all of them.
struct Admission {
    queue: VecDeque<(Size, Case)>,
    /// GiB not held by running cases.
    free: f64,
    /// GiB the pool may hold in all.
    total: f64,
    running: usize,
    /// GiB a case of each size holds, as measured.
    need: BTreeMap<Size, f64>,
    /// Per size, what a case holds relative to another size's (see [`Pool::start`]).
    scale: BTreeMap<Size, f64>,
    cores: usize,
    workers: usize,
    /// Cases started so far.
    started: usize,
    /// No case starts yet ([`Pool::release`]).
    held: bool,
    /// Sizes whose traces make no discrete choice.
    choiceless: Vec<Size>,
}

/// A case let start.
struct Start {
    size: Size,
    case: Case,
    /// GiB it holds while it runs.
    held: f64,
    /// BLAS threads it takes: every core when it runs alone, else the cores shared among
    /// the cases that can run with it.
    threads: usize,
    /// Whether its reference replays fn's discrete choices.
    choices: bool,
}

enum Take {
    Start(Start),
    Wait,
    Empty,
}

impl Admission {
    /// GiB a case of `size` holds: as measured, else estimated from the largest smaller
    /// size measured; None where neither is known.
    fn need(&self, size: Size) -> Option<f64> {
        if let Some(&n) = self.need.get(&size) {
            return Some(n);
        }
        let (smaller, &n) = self.need.range(..size).next_back()?;
        let ratio = self.scale.get(&size)? / self.scale.get(smaller)?;
        ratio.is_finite().then_some(n * ratio.max(1.0) * ESTIMATE_MARGIN)
    }

    /// GiB a case of `size` holds by its traced program, where a case in every worker fits
    /// in [`TRACE_ESTIMATE_SHARE`] of the memory; None otherwise.
    fn traced(&self, size: Size) -> Option<f64> {
        let gib = self.scale.get(&size)? * BYTES_PER_ELEMENT / f64::from(1u32 << 30);
        (gib.is_finite() && gib * self.workers as f64 <= self.total * TRACE_ESTIMATE_SHARE).then_some(gib)
    }

    fn take(&mut self) -> Take {
        let Some(&(size, case)) = self.queue.front() else { return Take::Empty };
        if self.held {
            return Take::Wait;
        }
        let need = self.need(size).or_else(|| self.traced(size));
        let alone = need.is_none();
        let held = match need {
            Some(n) if n <= self.free || self.running == 0 => n.min(self.free),
            None if self.running == 0 => self.free,
            _ => return Take::Wait,
        };
        self.queue.pop_front();
        self.free -= held;
        self.running += 1;
        self.started += 1;
        let together = self.workers.min(self.running + self.queue.len()).max(1);
        let threads = if alone { self.cores } else { (self.cores / together).max(1) };
        let choices = !self.choiceless.contains(&size);
        Take::Start(Start { size, case, held, threads, choices })
    }

    /// A case of `size` ended, its worker at `peak` GiB (0: unknown).
    fn done(&mut self, size: Size, held: f64, peak: f64) {
        self.free += held;
        self.running -= 1;
        self.need.entry(size).or_insert(if peak > 0.0 { peak * MEMORY_MARGIN } else { 0.0 });
    }
}

/// When the workers had loaded the harness: "; 16 of 16 workers had loaded the harness
/// 3-41s in" (loading a real model's harness in every worker at once can take long).
fn loaded(loads: &[f64], workers: usize) -> String {
    let first = loads.iter().copied().reduce(f64::min);
    let last = loads.iter().copied().reduce(f64::max);
    match (first, last) {
        (Some(a), Some(b)) => {
            format!("; {} of {workers} workers had loaded the harness {a:.0}-{b:.0}s in", loads.len())
        }
        _ => format!("; none of {workers} workers had loaded the harness"),
    }
}

/// One pool worker: loads the harness, then takes cases as the admission lets it until
/// none is left, the deadline passes, or the worker fails (its case is left to the
/// verifying worker).
fn serve(
    spec: &PoolSpec,
    env: Vec<(String, String)>,
    (queue, busy, troubles, loads): &Shared,
    tx: &Sender<Done>,
    started: Instant,
    deadline: Instant,
) {
    let left = || deadline.saturating_duration_since(Instant::now());
    let trouble = |what: String| {
        if let Ok(mut t) = troubles.lock() {
            t.push(what);
        }
    };
    let mut w = match Worker::start_with(&spec.python, env, false) {
        Ok(w) => w,
        Err(e) => return trouble(format!("a worker did not start: {e}")),
    };
    let load = Load { harness: spec.harness.clone(), references: Some(spec.folder.clone()) };
    let pid = w.pid();
    if let Err(e) = while_busy(busy, pid, || w.call(&load, left())) {
        let at = started.elapsed().as_secs();
        return trouble(format!("a worker had not loaded the harness after {at}s: {e}"));
    }
    loads.lock().map(|mut l| l.push(started.elapsed().as_secs_f64())).ok();
    let (lock, wake) = &**queue;
    loop {
        let Ok(mut admission) = lock.lock() else { return };
        let Start { size, case, held, threads, choices } = loop {
            match admission.take() {
                Take::Start(start) => break start,
                Take::Empty => return,
                Take::Wait if left().is_zero() => return,
                Take::Wait => match wake.wait_timeout(admission, left()) {
                    Ok((a, _)) => admission = a,
                    Err(_) => return,
                },
            }
        };
        drop(admission);
        let began = started.elapsed();
        let prepare = Prepare { size, cases: vec![case], threads: Some(threads), choices: Some(choices) };
        let reply = while_busy(busy, pid, || w.call(&prepare, left()));
        let peak = reply.as_ref().map_or(0.0, |r| r.peak_gib);
        if let Ok(mut a) = lock.lock() {
            a.done(size, held, peak);
        }
        wake.notify_all();
        if let Err(e) = &reply {
            trouble(format!("a {size} case failed: {e}"));
        }
        let kept = reply.is_ok_and(|r| r.prepared > 0);
        if tx.send(Done { size, case, began, ended: started.elapsed(), kept }).is_err() || !kept {
            return;
        }
    }
}

/// `work` with worker `pid` among the busy ones, whose processes [`Pool::stop`] kills.
fn while_busy<T>(busy: &Busy, pid: u32, work: impl FnOnce() -> T) -> T {
    busy.lock().map(|mut b| b.push(pid)).ok();
    let out = work();
    busy.lock().map(|mut b| b.retain(|p| *p != pid)).ok();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use superopt_worker::protocol::Variant;

    fn admission(free: f64) -> Admission {
        let queue = all_cases(&[0]).into();
        let (need, scale) = (BTreeMap::new(), BTreeMap::new());
        let choiceless = vec![];
        Admission {
            queue,
            free,
            total: free,
            running: 0,
            need,
            scale,
            cores: 16,
            workers: 16,
            started: 0,
            held: false,
            choiceless,
        }
    }

    /// Runs every case of `size` left at the queue's front to its end, each at `peak` GiB.
    fn finish_size(a: &mut Admission, size: Size, peak: f64) {
        while a.queue.front().is_some_and(|(z, _)| *z == size) {
            let s = started(a.take());
            a.done(size, s.held, peak);
        }
    }

    #[test]
    fn the_note_says_when_the_workers_had_loaded_the_harness() {
        assert_eq!(loaded(&[41.2, 3.4, 20.0], 16), "; 3 of 16 workers had loaded the harness 3-41s in");
        assert_eq!(loaded(&[], 16), "; none of 16 workers had loaded the harness");
    }

    #[test]
    fn a_held_pool_starts_no_case_until_released() {
        let mut a = Admission { held: true, ..admission(64.0) };
        assert!(matches!(a.take(), Take::Wait), "held while fn is traced");
        a.held = false;
        assert!(matches!(a.take(), Take::Start(_)));
    }

    #[test]
    fn a_larger_size_starts_from_the_smaller_ones_measurement_scaled() {
        let mut a = admission(100.0);
        a.scale = BTreeMap::from([(Size::Small, 1.0), (Size::Typical, 4.0), (Size::Large, 64.0)]);
        finish_size(&mut a, Size::Small, 2.0);
        let first = started(a.take());
        assert_eq!((first.size, first.held), (Size::Typical, 2.0 * 1.25 * 4.0 * 2.0), "estimated, doubled");
        assert_eq!(started(a.take()).size, Size::Typical, "a second typical case runs beside it");
        a.done(Size::Typical, first.held, 3.0);
        assert_eq!(a.need(Size::Typical), Some(3.0 * 1.25), "a measurement replaces the estimate");
        assert_eq!(a.need(Size::Large), Some(3.0 * 1.25 * 16.0 * 2.0), "from the largest smaller size measured");
    }

    #[test]
    fn cases_are_taken_back_only_while_no_worker_has_started() {
        let (_tx, rx) = mpsc::channel();
        let a = admission(100.0);
        let expected = a.queue.len();
        let queue = Arc::new((Mutex::new(a), Condvar::new()));
        let mut pool = Pool {
            workers: 2,
            expected,
            done: vec![],
            rx,
            closed: false,
            queue: queue.clone(),
            claimed: vec![],
            busy: Arc::default(),
            troubles: Arc::default(),
            loads: Arc::default(),
        };
        let last = (Size::Large, (0, Variant::Nonfinite));
        assert!(!pool.through(last.0, last.1));
        assert!(pool.claim(last.0, last.1), "the workers are still loading");
        assert!(!pool.claim(last.0, last.1), "taken back once");
        assert!(pool.through(last.0, last.1), "taken back, it is ready for every later candidate");
        assert_eq!(pool.expected, expected - 1);
        assert!(matches!(queue.0.lock().unwrap().take(), Take::Start(_)));
        assert!(!pool.claim(Size::Large, (0, Variant::Zeros)), "a worker has started: wait for the pool");
        assert!(!pool.through(Size::Large, (0, Variant::Zeros)));
    }

    #[test]
    fn a_small_traced_program_starts_its_first_cases_together() {
        let gib = f64::from(1u32 << 30) / BYTES_PER_ELEMENT;
        let mut a = admission(100.0);
        a.scale = BTreeMap::from([(Size::Small, 3.0 * gib), (Size::Typical, 6.0 * gib)]);
        let held: Vec<(f64, usize)> = (0..3).map(|_| started(a.take())).map(|s| (s.held, s.threads)).collect();
        assert_eq!(held, [(3.0, 1); 3], "16 workers x 3 GiB fit in half of 100: all start, sharing the cores");
        a.done(Size::Small, 3.0, 2.0);
        assert_eq!(a.need(Size::Small), Some(2.0 * 1.25), "a measurement replaces the estimate");
        // A near miss: 16 x 3.2 GiB is more than half of 100.
        let mut a = admission(100.0);
        a.scale = BTreeMap::from([(Size::Small, 3.2 * gib)]);
        assert_eq!(started(a.take()).held, 100.0, "measured alone first");
        assert!(matches!(a.take(), Take::Wait));
    }

    #[test]
    fn without_a_scale_a_larger_size_is_measured_alone() {
        let mut a = admission(100.0);
        finish_size(&mut a, Size::Small, 2.0);
        let first = started(a.take());
        assert_eq!((first.size, first.held, first.threads), (Size::Typical, 100.0, 16));
        assert!(matches!(a.take(), Take::Wait));
        a.scale = BTreeMap::from([(Size::Small, 1.0), (Size::Typical, f64::INFINITY)]);
        assert_eq!(a.need(Size::Typical), None, "a scale that says nothing is none");
    }

    fn started(take: Take) -> Start {
        let Take::Start(start) = take else { panic!("a case starts") };
        start
    }

    #[test]
    fn the_first_case_of_a_size_runs_alone_then_memory_decides() {
        let mut a = admission(100.0);
        let first = started(a.take());
        assert_eq!((first.size, first.case), (Size::Small, (0, Variant::Normal)));
        assert_eq!(first.held, 100.0, "alone: it holds all the memory");
        assert!(matches!(a.take(), Take::Wait), "nothing else runs while a size is measured");
        a.done(Size::Small, first.held, 30.0);
        let held: Vec<f64> = (0..3).map(|_| if let Take::Start(s) = a.take() { s.held } else { 0.0 }).collect();
        assert_eq!(held, [37.5, 37.5, 0.0], "30 GiB measured, 37.5 held each: two fit in 100");
        a.done(Size::Small, 37.5, 30.0);
        assert_eq!(started(a.take()).size, Size::Small);
    }

    #[test]
    fn a_case_larger_than_the_memory_still_runs_alone() {
        let mut a = admission(10.0);
        let held = started(a.take()).held;
        a.done(Size::Small, held, 40.0);
        assert_eq!(started(a.take()).size, Size::Small, "alone, whatever it holds");
        assert!(matches!(a.take(), Take::Wait));
    }

    #[test]
    fn a_case_alone_takes_every_core_and_cases_together_share_them() {
        let mut a = admission(1000.0);
        let first = started(a.take());
        assert_eq!(first.threads, 16, "the first case of a size runs alone");
        a.done(Size::Small, first.held, 1.0);
        // 6 more small cases, then 7 of each larger size: up to 16 cases can run together.
        assert_eq!(started(a.take()).threads, 1, "16 workers, 19 cases left: a core each");
        let mut b = admission(1000.0);
        b.queue.truncate(3);
        let first = started(b.take());
        b.done(Size::Small, first.held, 1.0);
        let threads: Vec<usize> = (0..2).map(|_| started(b.take()).threads).collect();
        assert_eq!(threads, [8, 8], "the last two cases share the 16 cores");
    }
}
