//! The float64 references, computed ahead of verification by a pool of workers.
//!
//! MLX's CPU runs a float64 graph on one core, so one worker computing a real model's
//! references takes minutes. The pool starts after the trace: one worker per core, each
//! loading the harness as the verifying worker does and computing one case at a time into
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

/// What the pool's workers start from.
#[derive(Clone, Debug)]
pub struct PoolSpec {
    pub python: PathBuf,
    pub harness: String,
    /// The session's reference folder.
    pub folder: String,
}

/// A case's reference, written by a pool worker: when (since the pool started) it began
/// and ended.
struct Done {
    size: Size,
    began: Duration,
    ended: Duration,
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
}

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

/// Every size's verification cases, small first.
pub fn all_cases(seeds: &[u64]) -> Vec<(Size, Case)> {
    Size::ALL.iter().flat_map(|z| cases(seeds).into_iter().map(move |c| (*z, c))).collect()
}

impl Pool {
    /// Starts `workers` workers on every size's cases of `seeds`; none works past `deadline`.
    pub fn start(spec: &PoolSpec, seeds: &[u64], workers: usize, deadline: Instant) -> Pool {
        let queue: VecDeque<(Size, Case)> = all_cases(seeds).into();
        let expected = queue.len();
        let total = available_gib().map_or(f64::INFINITY, |g| g as f64 * MEMORY_SHARE);
        let admission = Admission { queue, free: total, running: 0, need: BTreeMap::new(), cores: cores(), workers };
        let queue = Arc::new((Mutex::new(admission), Condvar::new()));
        let (tx, rx) = mpsc::channel();
        let started = Instant::now();
        // numpy's BLAS in each worker starts with its share of the cores; each case then
        // gets as many as the cases running with it leave (Start::threads).
        let blas = (cores() / workers).max(1).to_string();
        let env: Vec<(String, String)> = ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"]
            .iter()
            .map(|k| (k.to_string(), blas.clone()))
            .collect();
        for _ in 0..workers {
            let (spec, queue, tx, env) = (spec.clone(), queue.clone(), tx.clone(), env.clone());
            std::thread::spawn(move || serve(&spec, env, &queue, &tx, started, deadline));
        }
        Pool { workers, expected, done: vec![], rx }
    }

    /// Waits until every case is done, every worker has stopped, or `deadline`; whether
    /// every case is done.
    pub fn wait(&mut self, deadline: Instant) -> bool {
        while self.done.len() < self.expected {
            match self.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(d) => self.done.push(d),
                Err(_) => break,
            }
        }
        self.done.len() == self.expected
    }

    /// Per size, the span of the cases the pool has done so far.
    pub fn spans(&self) -> BTreeMap<Size, Span> {
        let mut out = BTreeMap::new();
        for z in Size::ALL {
            let of: Vec<&Done> = self.done.iter().filter(|d| d.size == z).collect();
            let (Some(began), Some(ended)) = (of.iter().map(|d| d.began).min(), of.iter().map(|d| d.ended).max())
            else {
                continue;
            };
            out.insert(z, Span { seconds: (ended - began).as_secs_f64(), cases: of.len() });
        }
        out
    }
}

/// Which case may start, by memory: the first case of each size alone (it measures what a
/// case of that size holds), then as many as the free memory holds.
struct Admission {
    queue: VecDeque<(Size, Case)>,
    /// GiB not held by running cases.
    free: f64,
    running: usize,
    /// GiB a case of each size holds, as measured.
    need: BTreeMap<Size, f64>,
    cores: usize,
    workers: usize,
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
}

enum Take {
    Start(Start),
    Wait,
    Empty,
}

impl Admission {
    fn take(&mut self) -> Take {
        let Some(&(size, case)) = self.queue.front() else { return Take::Empty };
        let alone = !self.need.contains_key(&size);
        let held = match self.need.get(&size) {
            Some(&n) if n <= self.free || self.running == 0 => n.min(self.free),
            None if self.running == 0 => self.free,
            _ => return Take::Wait,
        };
        self.queue.pop_front();
        self.free -= held;
        self.running += 1;
        let together = self.workers.min(self.running + self.queue.len()).max(1);
        let threads = if alone { self.cores } else { (self.cores / together).max(1) };
        Take::Start(Start { size, case, held, threads })
    }

    /// A case of `size` ended, its worker at `peak` GiB (0: unknown).
    fn done(&mut self, size: Size, held: f64, peak: f64) {
        self.free += held;
        self.running -= 1;
        self.need.entry(size).or_insert(if peak > 0.0 { peak * MEMORY_MARGIN } else { 0.0 });
    }
}

/// One pool worker: loads the harness, then takes cases as the admission lets it until
/// none is left, the deadline passes, or the worker fails (its case is left to the
/// verifying worker).
fn serve(
    spec: &PoolSpec,
    env: Vec<(String, String)>,
    queue: &(Mutex<Admission>, Condvar),
    tx: &Sender<Done>,
    started: Instant,
    deadline: Instant,
) {
    let left = || deadline.saturating_duration_since(Instant::now());
    let Ok(mut w) = Worker::start_with(&spec.python, env, false) else { return };
    let load = Load { harness: spec.harness.clone(), references: Some(spec.folder.clone()) };
    if w.call(&load, left()).is_err() {
        return;
    }
    let (lock, wake) = queue;
    loop {
        let Ok(mut admission) = lock.lock() else { return };
        let Start { size, case, held, threads } = loop {
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
        let reply = w.call(&Prepare { size, cases: vec![case], threads: Some(threads) }, left());
        let peak = reply.as_ref().map_or(0.0, |r| r.peak_gib);
        if let Ok(mut a) = lock.lock() {
            a.done(size, held, peak);
        }
        wake.notify_all();
        if !reply.is_ok_and(|r| r.prepared > 0) || tx.send(Done { size, began, ended: started.elapsed() }).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use superopt_worker::protocol::Variant;

    fn admission(free: f64) -> Admission {
        let queue = all_cases(&[0]).into();
        Admission { queue, free, running: 0, need: BTreeMap::new(), cores: 16, workers: 16 }
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
