//! A worker with the harness loaded, and the requests a run makes of it.

use crate::references::{Pool, PoolSpec};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use superopt_ir::Program;
use superopt_search::egraph::cost::Device;
use superopt_verify::{OutputFigures, SeedFigures, Tolerance};
use superopt_worker::protocol::{
    self, Backend, Calibrate, Case, DeviceKind, Dispatch, Fixed, Hello, HelloReply, Load, LoadConstants, LoadProgram,
    ProgramId, ReferenceDevice, ReferenceDeviceReply, SameOutputs, SaveConstants, Sensitivity, Size, Spread, Time,
    Variant, Varies, Verify, SAMPLE_SECONDS,
};
use superopt_worker::{find_python, Worker, WorkerError};

/// Where the harness is and which Python runs it.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub harness: PathBuf,
    pub python: Option<PathBuf>,
    /// How long one worker request may take before the worker is restarted.
    pub request_timeout: Duration,
}

/// Samples per program: from its single calls' seconds (`first`, their median), enough
/// calls to last about [`SAMPLE_SECONDS`].
fn sample_calls(first: &BTreeMap<ProgramId, Vec<f64>>) -> BTreeMap<ProgramId, u64> {
    first
        .iter()
        .map(|(p, xs)| {
            let t = superopt_bench::median(xs).max(1e-7);
            (p.clone(), ((SAMPLE_SECONDS / t).ceil() as u64).clamp(1, 10_000))
        })
        .collect()
}

/// The programs whose single call (`first`) is short enough to be timed twice more before
/// their calls per sample are set: one call held up once (a pause of the process, a
/// buffer allocated) set a 0.1 ms program's samples at a call or two each, which then
/// counted the device's start and wait each time (0.76x for a program timed at 1.07x).
fn timed_again(first: &BTreeMap<ProgramId, Vec<f64>>) -> Vec<ProgramId> {
    first.iter().filter(|(_, xs)| xs.iter().all(|t| *t <= RECHECK_BELOW_S)).map(|(p, _)| p.clone()).collect()
}

/// Single calls up to this long are timed three times (see [`timed_again`]).
const RECHECK_BELOW_S: f64 = 4.0 * SAMPLE_SECONDS;

/// Why a candidate the verification deadline reached is out of the run.
pub const OUT_OF_TIME: &str = "not verified: the time budget ran out";

/// The verification cases: each seed on normal inputs, then each edge variant on the first.
pub fn cases(seeds: &[u64]) -> Vec<Case> {
    let normal = seeds.iter().map(|s| (*s, Variant::Normal));
    normal.chain(Variant::EDGES.iter().map(|v| (seeds[0], *v))).collect()
}

pub struct Session {
    pub worker: Worker,
    pub hello: HelloReply,
    pub harness: PathBuf,
    pub timeout: Duration,
    /// The float64 references of the session's cases, kept across worker restarts; the
    /// folder goes with the session.
    reference_folder: tempfile::TempDir,
    /// Seconds the verifying worker spent on each size's float64 references, as it last said.
    pub reference_seconds: BTreeMap<Size, f64>,
    /// The workers computing the references ahead (none: each when first needed).
    pub pool: Option<Pool>,
    /// Where the references run, and why there.
    pub reference_device: ReferenceDeviceReply,
    /// The harness's `STEP_DIMS`.
    pub step_dims: Vec<superopt_ir::DimTerm>,
    /// The harness's `DEVICE_TIME`: its timings count the device's part of each call.
    pub device_time: bool,
    /// Per size, how far two calls of `fn` on the same inputs differed in rounding (where
    /// they were not bit-identical).
    pub varies: BTreeMap<Size, f64>,
}

/// A failure the user must fix in their harness: one line, non-zero exit.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HarnessFault(pub String);

/// MLX cannot trace `fn` (e.g. `mx.custom_function` with a vjp): the run ends with "no change".
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Untraceable(pub String);

pub fn harness_fault(e: WorkerError) -> anyhow::Error {
    match e {
        WorkerError::Harness(m) => HarnessFault(m).into(),
        WorkerError::Unsupported(m) => Untraceable(m).into(),
        WorkerError::Candidate(m) => HarnessFault(m).into(),
        WorkerError::Crashed(m) => HarnessFault(format!("the harness crashed the worker: {m}")).into(),
        WorkerError::TimedOut(m) => HarnessFault(format!("the harness stalled the worker, which {m}")).into(),
        other => anyhow::Error::new(other),
    }
}

/// The fewest samples per program a deciding timing takes, where the budget allows.
pub const DECIDING_SAMPLES: usize = 40;

/// Samples per program in a screen's first timing.
pub const SCREEN_ROUNDS: u64 = 3;

/// When timing may stop short of its budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    /// Once every program's samples are steady (sigma/mu < 5%): a first look, a report.
    Steady,
    /// Steady and at least [`DECIDING_SAMPLES`] each (or the budget spent): samples that
    /// decide, where a few percent matter and six steady samples can still be one-sided.
    Decide,
}

impl Session {
    pub fn start(config: &SessionConfig) -> Result<Session> {
        let harness = std::fs::canonicalize(&config.harness)
            .with_context(|| format!("cannot read the harness {}", config.harness.display()))?;
        if harness.extension().and_then(|e| e.to_str()) != Some("py") {
            bail!("{} is not a .py file; a harness is a Python file defining fn and input_factory", harness.display());
        }
        let python = find_python(config.python.as_deref(), &|msg| eprintln!("{msg}"))?;
        let mut worker = Worker::start(&python.path)?;
        let timeout = config.request_timeout;
        let hello = worker.call(&Hello {}, timeout)?;
        let reference_folder = tempfile::tempdir().context("no temporary folder for the float64 references")?;
        let load = Load {
            harness: harness.to_string_lossy().into_owned(),
            references: Some(reference_folder.path().to_string_lossy().into_owned()),
        };
        let loaded = worker.stateful("harness", &load, timeout).map_err(harness_fault)?;
        let (step_dims, device_time) = (loaded.step_dims, loaded.device_time);
        let reference_device = ReferenceDeviceReply { device: DeviceKind::Cpu, why: "the CPU backend".into() };
        let reference_seconds = BTreeMap::new();
        Ok(Session {
            worker,
            hello,
            harness,
            timeout,
            reference_folder,
            reference_seconds,
            pool: None,
            reference_device,
            step_dims,
            device_time,
            varies: BTreeMap::new(),
        })
    }

    /// Where the float64 references run: with a GPU backend, the worker checks whether the
    /// GPU computes them as the CPU does (then they take milliseconds there). Replayed
    /// after a restart.
    pub fn choose_reference_device(&mut self) {
        if self.backend() == Backend::Cpu {
            return;
        }
        match self.worker.stateful("reference_device", &ReferenceDevice {}, self.timeout) {
            Ok(r) => self.reference_device = r,
            Err(e) => self.reference_device.why = format!("the GPU check failed: {e}"),
        }
    }

    /// Starts `workers` workers (none: 0) loading the harness, to compute every case's
    /// float64 reference ahead on the CPU once [`Session::release_references`] lets them.
    pub fn preload_references(&mut self, seeds: &[u64], workers: usize, deadline: Instant) {
        if workers == 0 {
            return;
        }
        let spec = PoolSpec {
            python: self.worker.python().to_path_buf(),
            harness: self.harness.to_string_lossy().into_owned(),
            folder: self.reference_folder.path().to_string_lossy().into_owned(),
        };
        self.pool = Some(Pool::start(&spec, seeds, workers, deadline));
    }

    /// [`Session::preload_references`] and [`Session::release_references`] at once.
    pub fn start_references(&mut self, seeds: &[u64], workers: usize, scale: BTreeMap<Size, f64>, deadline: Instant) {
        self.preload_references(seeds, workers, deadline);
        self.release_references(scale, vec![]);
    }

    /// Lets the pool start its cases (`scale`: see [`Pool::release`]); stops it where the
    /// references run on the GPU.
    pub fn release_references(&mut self, scale: BTreeMap<Size, f64>, choiceless: Vec<Size>) {
        if self.reference_device.device == DeviceKind::Gpu {
            self.pool = None; // dropping it stops its workers
        } else if let Some(pool) = self.pool.as_mut() {
            pool.release(scale, choiceless);
        }
    }

    /// Waits for the pool (if any) up to `deadline`; whether it did every case.
    pub fn await_references(&mut self, deadline: Instant) -> bool {
        self.pool.as_mut().is_none_or(|p| p.wait(deadline))
    }

    /// Whether verifying `case` at `size` needs no waiting: the pool (if any) is through
    /// with it (or with everything), or gave it back before starting (see [`Pool::claim`]);
    /// else the verifying worker computes it when asked.
    pub fn reference_ready(&mut self, size: Size, case: Case) -> bool {
        self.pool.as_mut().is_none_or(|p| {
            p.drain();
            p.through(size, case) || p.claim(size, case)
        })
    }

    /// Waits up to `deadline` for the pool to be through with one more case; whether it was.
    pub fn await_reference(&mut self, deadline: Instant) -> bool {
        self.pool.as_mut().is_some_and(|p| p.next(deadline))
    }

    /// Ends the pool's work: no case starts, and those running are killed (verification is over).
    pub fn stop_references(&mut self) {
        if let Some(p) = self.pool.as_mut() {
            p.stop();
        }
    }

    /// Whether the pool (if any) kept every case's reference.
    pub fn references_kept(&self) -> bool {
        self.pool.as_ref().is_none_or(|p| p.all_kept())
    }

    /// Seconds spent on `size`'s float64 references: the pool's span and the verifying
    /// worker's own time.
    pub fn reference_time(&self, size: Size) -> f64 {
        let pool = self.pool.as_ref().and_then(|p| p.spans().get(&size).map(|s| s.seconds));
        pool.unwrap_or(0.0) + self.reference_seconds.get(&size).copied().unwrap_or(0.0)
    }

    /// How many workers computed the float64 references (1: the verifying worker).
    pub fn reference_workers(&self) -> usize {
        self.pool.as_ref().map_or(1, |p| p.workers)
    }

    /// The device and MLX version, as a file-name-safe key for per-device caches.
    pub fn device_key(&self) -> String {
        let key = format!("{} mlx {}", self.hello.device, self.hello.mlx);
        key.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
    }

    /// The device's rates for the cost model: measured by the worker once per device and
    /// MLX version, then read from the user cache; the default model if measuring fails.
    pub fn device(&mut self) -> Device {
        // "4": on a GPU, copies many times its cache; whether float32 matmuls are TF32.
        let name = format!("device-4-{}.json", self.device_key());
        if let Some(d) = crate::cache::read(&name) {
            return d;
        }
        let Ok(c) = self.worker.call(&Calibrate {}, self.timeout) else { return Device::default() };
        if !(c.bytes_per_s > 0.0 && c.flops_per_s > 0.0 && c.launch_s >= 0.0) {
            return Device::default();
        }
        let d = Device {
            bytes_per_s: c.bytes_per_s,
            flops_per_s: c.flops_per_s,
            launch_s: c.launch_s,
            fixed_s: c.fixed_s,
            matmul_tf32: c.matmul_tf32,
        };
        crate::cache::write(&name, &d);
        d
    }

    pub fn trace(&mut self, size: Size) -> Result<Program> {
        match superopt_trace::trace_size(&mut self.worker, size, 0, self.timeout) {
            Ok(t) => {
                if let Some(v) = t.varies {
                    self.varies.insert(size, v);
                    self.worker.stateful("varies", &Varies {}, self.timeout).map_err(harness_fault)?;
                }
                Ok(t.program)
            }
            Err(superopt_trace::TraceError::Worker(e)) => Err(harness_fault(e)),
            Err(e) => Err(e.into()),
        }
    }

    /// Loads a module as program `id`, calling `entry`.
    pub fn register(&mut self, id: ProgramId, path: &Path, entry: &str) -> Result<(), WorkerError> {
        let req = LoadProgram { id: id.clone(), path: path.to_string_lossy().into_owned(), entry: entry.into() };
        self.worker.stateful(id.name(), &req, self.timeout).map(|_| ())
    }

    /// Figures for `program` at `size`: each seed on normal inputs, then each edge
    /// variant on the first seed, one request per case so `deadline` is checked between.
    pub fn verify(
        &mut self,
        program: &ProgramId,
        size: Size,
        seeds: &[u64],
        tol: Tolerance,
        deadline: Option<Instant>,
    ) -> Result<Vec<SeedFigures>, WorkerError> {
        let mut out = vec![];
        for case in cases(seeds) {
            if deadline.is_some_and(|d| Instant::now() > d) {
                return Err(WorkerError::Candidate(OUT_OF_TIME.into()));
            }
            out.extend(self.verify_case(program, size, case, tol)?);
        }
        if deadline.is_none_or(|d| Instant::now() <= d) {
            self.finish_size(size, &mut out, tol)?;
        }
        Ok(out)
    }

    /// Figures for `program` on one case at `size`.
    pub fn verify_case(
        &mut self,
        program: &ProgramId,
        size: Size,
        case: Case,
        tol: Tolerance,
    ) -> Result<Vec<SeedFigures>, WorkerError> {
        let fixed = match tol {
            Tolerance::Fixed { atol, rtol, .. } => Some(Fixed { atol, rtol }),
            Tolerance::Relative => None,
        };
        let req = Verify { program: program.clone(), size, cases: vec![case], fixed };
        let reply = self.worker.call(&req, self.timeout)?;
        self.note_references(size, reply.reference_seconds);
        Ok(reply.seeds)
    }

    /// Completes the figures of every case at `size`: what judging needs beyond them.
    pub fn finish_size(&mut self, size: Size, figs: &mut [SeedFigures], tol: Tolerance) -> Result<(), WorkerError> {
        if tol == Tolerance::Relative {
            self.measure_sensitivity(size, figs)?;
            self.measure_spread(size, figs, tol)?;
        }
        Ok(())
    }

    /// The rounding spread of each case it may decide ([`superopt_verify::spread_cases`]),
    /// until one whose spread does not make it pass (the size is rejected then).
    fn measure_spread(&mut self, size: Size, figs: &mut [SeedFigures], tol: Tolerance) -> Result<(), WorkerError> {
        for i in superopt_verify::spread_cases(figs, tol) {
            let s = &mut figs[i];
            let reply = self.worker.call(&Spread { size, case: (s.seed, s.variant) }, self.timeout)?;
            for (o, spread) in s.outputs.iter_mut().zip(reply.outputs) {
                o.spread = spread;
            }
            if !superopt_verify::case_passes(figs, i, tol) {
                break;
            }
        }
        Ok(())
    }

    /// Where an edge case's error is more than twice the original's, the sensitivity of it
    /// and of the first normal seed (what the judge needs to tell an ill-conditioned input;
    /// the worker measures each case once).
    fn measure_sensitivity(&mut self, size: Size, figs: &mut [SeedFigures]) -> Result<(), WorkerError> {
        let over = |o: &OutputFigures| {
            let twice = |c: Option<f64>, r: Option<f64>| c.zip(r).is_some_and(|(c, r)| c > 2.0 * r);
            twice(o.cand_l2, o.orig_l2) || twice(o.cand_max, o.orig_max)
        };
        let edge = |s: &SeedFigures| s.variant != Variant::Normal && s.outputs.iter().any(over);
        if !figs.iter().any(edge) {
            return Ok(());
        }
        let first = figs.iter().position(|s| s.variant == Variant::Normal);
        let wanted: Vec<usize> = (0..figs.len()).filter(|i| Some(*i) == first || edge(&figs[*i])).collect();
        for i in wanted {
            let s = &mut figs[i];
            let reply = self.worker.call(&Sensitivity { size, case: (s.seed, s.variant) }, self.timeout)?;
            for (o, moved) in s.outputs.iter_mut().zip(reply.outputs) {
                o.sensitivity = moved;
            }
        }
        Ok(())
    }

    /// The worker's time on `size`'s references so far (a restarted worker counts anew).
    fn note_references(&mut self, size: Size, seconds: f64) {
        let known = self.reference_seconds.entry(size).or_insert(0.0);
        *known = known.max(seconds);
    }

    /// Interleaved timing samples (seconds per call) of `programs` at `size`, sampling
    /// until `budget` is spent or sigma/mu < 5% for each (and, for [`Sampling::Decide`],
    /// each has [`DECIDING_SAMPLES`]). Each program's samples queue
    /// enough calls to last about [`SAMPLE_SECONDS`], so the fixed cost of starting and
    /// waiting for the device adds the same fraction to every program's time (samples
    /// of a fixed call count overstate fast programs' times, and so narrow the ratios).
    pub fn time(
        &mut self,
        programs: &[ProgramId],
        size: Size,
        budget: Duration,
        until: Sampling,
    ) -> Result<BTreeMap<ProgramId, Vec<f64>>, WorkerError> {
        let start = Instant::now();
        let iters = self.calls_per_sample(programs, size)?;
        let mut samples: BTreeMap<ProgramId, Vec<f64>> = programs.iter().map(|p| (p.clone(), vec![])).collect();
        let mut rounds = 6;
        loop {
            let round_cost = SAMPLE_SECONDS * programs.len() as f64 * rounds as f64;
            if !samples[&programs[0]].is_empty() && start.elapsed().as_secs_f64() + round_cost > budget.as_secs_f64() {
                break;
            }
            for (p, xs) in self.time_rounds(programs, size, iters.clone(), rounds)? {
                samples.entry(p).or_default().extend(xs);
            }
            let steady = samples.values().all(|xs| superopt_bench::cv(xs) < superopt_bench::TARGET_CV);
            let enough = until == Sampling::Steady || samples[&programs[0]].len() >= DECIDING_SAMPLES;
            if (steady && enough) || samples[&programs[0]].len() >= 400 {
                break;
            }
            rounds *= 2;
        }
        Ok(samples)
    }

    /// Each program's median seconds per call at `size` in a first timing: a call to warm
    /// it (its first call compiles), then [`SCREEN_ROUNDS`] interleaved samples of about
    /// [`SAMPLE_SECONDS`] each ([`crate::screen`]).
    pub fn screen(&mut self, programs: &[ProgramId], size: Size) -> Result<BTreeMap<ProgramId, f64>, WorkerError> {
        let iters = self.calls_per_sample(programs, size)?;
        let samples = self.time_rounds(programs, size, iters, SCREEN_ROUNDS)?;
        Ok(samples.into_iter().map(|(p, xs)| (p, superopt_bench::median(&xs))).collect())
    }

    /// One call of each program (after one that compiles), two more of the short ones
    /// ([`timed_again`]), then how many calls make a sample of about [`SAMPLE_SECONDS`].
    fn calls_per_sample(
        &mut self,
        programs: &[ProgramId],
        size: Size,
    ) -> Result<BTreeMap<ProgramId, u64>, WorkerError> {
        let ones = |ps: &[ProgramId]| ps.iter().map(|p| (p.clone(), 1)).collect::<BTreeMap<ProgramId, u64>>();
        let mut first = self.time_rounds(programs, size, ones(programs), 1)?;
        let again = timed_again(&first);
        if !again.is_empty() {
            for (p, xs) in self.time_rounds(&again, size, ones(&again), 2)? {
                first.entry(p).or_default().extend(xs);
            }
        }
        Ok(sample_calls(&first))
    }

    fn time_rounds(
        &mut self,
        programs: &[ProgramId],
        size: Size,
        iters: BTreeMap<ProgramId, u64>,
        rounds: u64,
    ) -> Result<BTreeMap<ProgramId, Vec<f64>>, WorkerError> {
        let req = Time { programs: programs.to_vec(), size, seed: 0, iters, rounds };
        Ok(self.worker.call(&req, self.timeout)?.samples)
    }

    /// The seconds per call a by-size `program` spends choosing at `size`, where it runs the
    /// original; None where it does not return the original `fn`'s outputs there.
    pub fn dispatch(&mut self, program: &ProgramId, size: Size) -> Result<Option<f64>, WorkerError> {
        let req = Dispatch { program: program.clone(), size };
        let reply = self.worker.call(&req, self.timeout)?;
        Ok(reply.delegates.then_some(reply.seconds))
    }

    /// Whether `program` returns at `size` what `part` returns there, bit for bit.
    pub fn same_outputs(&mut self, program: &ProgramId, part: &ProgramId, size: Size) -> Result<bool, WorkerError> {
        let req = SameOutputs { program: program.clone(), part: part.clone(), size };
        Ok(self.worker.call(&req, self.timeout)?.same)
    }

    pub fn save_constants(&mut self, keys: &[String], path: &Path) -> Result<(), WorkerError> {
        let req = SaveConstants { keys: keys.to_vec(), path: path.to_string_lossy().into_owned() };
        self.worker.call(&req, self.timeout).map(|_| ())
    }

    /// Saves the traced constants of `keys` to `path` once, for every candidate's module to
    /// load, and has a restarted worker keep them again (its traced ones are gone).
    pub fn keep_constants(&mut self, keys: &[String], path: &Path) -> Result<(), WorkerError> {
        self.save_constants(keys, path)?;
        let req = LoadConstants { path: path.to_string_lossy().into_owned() };
        self.worker.stateful("constants", &req, self.timeout).map(|_| ())
    }

    /// Whether MLX's backend here runs custom kernels, and for which target.
    pub fn backend(&self) -> protocol::Backend {
        self.hello.backend
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_samples_for_about_the_same_time() {
        let slow = ProgramId::Candidate("slow".into());
        let fast = ProgramId::Candidate("fast".into());
        let first =
            BTreeMap::from([(slow.clone(), vec![SAMPLE_SECONDS / 4.0]), (fast.clone(), vec![SAMPLE_SECONDS / 400.0])]);
        let calls = sample_calls(&first);
        assert_eq!((calls[&slow], calls[&fast]), (4, 400));
        let tiny = BTreeMap::from([(ProgramId::Original, vec![0.0])]);
        assert_eq!(sample_calls(&tiny)[&ProgramId::Original], 10_000);
    }

    #[test]
    fn a_short_call_held_up_once_does_not_set_its_samples() {
        let (quick, slow) = (ProgramId::Candidate("quick".into()), ProgramId::Candidate("slow".into()));
        let first = BTreeMap::from([(quick.clone(), vec![0.006]), (slow.clone(), vec![0.5])]);
        assert_eq!(timed_again(&first), std::slice::from_ref(&quick), "a long call is timed once");
        let timed = BTreeMap::from([(quick.clone(), vec![0.006, 0.0001, 0.0001])]);
        assert_eq!(sample_calls(&timed)[&quick], 100, "the median of three, not the held-up call");
        let near_miss = BTreeMap::from([(quick.clone(), vec![0.006, 0.006, 0.0001])]);
        assert_eq!(sample_calls(&near_miss)[&quick], 2, "held up twice: it is that slow");
    }
}
