//! A worker with the harness loaded, and the requests the commands make of it.

use crate::cli::CommonArgs;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use superopt_ir::Program;
use superopt_search::egraph::cost::Device;
use superopt_verify::{SeedFigures, Tolerance};
use superopt_worker::{find_python, Worker, WorkerError};

/// How long one timing sample of one program lasts: long against the few tens of
/// microseconds a GPU takes to start and to report back.
pub const SAMPLE_SECONDS: f64 = 0.01;

pub const SIZES: [&str; 3] = ["small", "typical", "large"];

/// A JSON file of superopt's user cache directory, if it is there and parses.
pub fn read_cache<T: serde::de::DeserializeOwned>(name: &str) -> Option<T> {
    let path = dirs::cache_dir()?.join("superopt").join(name);
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Writes a JSON file of superopt's user cache directory; a cache that cannot be written
/// only costs the next run the time to measure again.
pub fn write_cache<T: serde::Serialize>(name: &str, value: &T) {
    if let Some(dir) = dirs::cache_dir().map(|d| d.join("superopt")) {
        let _ = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(dir.join(name), serde_json::to_vec_pretty(value).unwrap()));
    }
}

/// Calls per timing sample for each program, from one call's seconds (`first`): enough
/// to last about [`SAMPLE_SECONDS`].
fn sample_calls(first: &HashMap<String, Vec<f64>>) -> HashMap<String, u64> {
    first
        .iter()
        .map(|(p, xs)| {
            let t = xs.iter().cloned().fold(0.0, f64::max).max(1e-7);
            (p.clone(), ((SAMPLE_SECONDS / t).ceil() as u64).clamp(1, 10_000))
        })
        .collect()
}

/// The verification cases: each seed on normal inputs, then each edge variant on the first.
fn cases(seeds: &[u64]) -> Vec<(u64, &'static str)> {
    seeds.iter().map(|s| (*s, "normal")).chain(superopt_verify::EDGE_VARIANTS.iter().map(|v| (seeds[0], *v))).collect()
}

#[derive(Debug, Deserialize)]
pub struct Hello {
    pub python: String,
    pub mlx: String,
    pub device: String,
    /// cpu, cuda or metal: which custom-kernel candidates can run.
    pub backend: String,
}

pub struct Session {
    pub worker: Worker,
    pub hello: Hello,
    pub harness: PathBuf,
    pub timeout: Duration,
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
        other => anyhow::Error::new(other),
    }
}

impl Session {
    pub fn start(args: &CommonArgs) -> Result<Session> {
        let harness = std::fs::canonicalize(&args.harness).with_context(|| format!("cannot read the harness {}", args.harness.display()))?;
        if harness.extension().and_then(|e| e.to_str()) != Some("py") {
            bail!("{} is not a .py file; a harness is a Python file defining fn and input_factory", harness.display());
        }
        let python = find_python(args.python.as_deref(), &|msg| eprintln!("{msg}"))?;
        let mut worker = Worker::start(&python.path)?;
        let timeout = Duration::from_secs(args.request_timeout);
        let hello: Hello = serde_json::from_value(worker.cmd("hello", json!({}), timeout)?)?;
        let load = json!({"cmd": "load", "harness": harness.to_string_lossy()});
        worker.stateful("harness", load, timeout).map_err(harness_fault)?;
        Ok(Session { worker, hello, harness, timeout })
    }

    /// The device and MLX version, as a file-name-safe key for per-device caches.
    pub fn device_key(&self) -> String {
        format!("{} mlx {}", self.hello.device, self.hello.mlx).chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
    }

    /// The device's rates for the cost model: measured by the worker once per device and
    /// MLX version, then read from the user cache; the default model if measuring fails.
    pub fn device(&mut self) -> Device {
        // "2": samples of one length (SAMPLE_SECONDS) and the fixed time per kernel.
        let name = format!("device-2-{}.json", self.device_key());
        if let Some(d) = read_cache(&name) {
            return d;
        }
        let measured = self.worker.cmd("calibrate", json!({}), self.timeout).ok().and_then(|v| serde_json::from_value::<Device>(v).ok());
        let Some(d) = measured.filter(|d| d.bytes_per_s > 0.0 && d.flops_per_s > 0.0 && d.launch_s >= 0.0) else { return Device::default() };
        write_cache(&name, &d);
        d
    }

    pub fn trace(&mut self, size: &str) -> Result<Program> {
        match superopt_trace::trace_size(&mut self.worker, size, 0, self.timeout) {
            Ok(p) => Ok(p),
            Err(superopt_trace::TraceError::Worker(e)) => Err(harness_fault(e)),
            Err(e) => Err(e.into()),
        }
    }

    /// Loads a module as program `id`, calling `entry`.
    pub fn register(&mut self, id: &str, path: &Path, entry: &str) -> Result<(), WorkerError> {
        let req = json!({"cmd": "program", "id": id, "path": path.to_string_lossy(), "entry": entry});
        self.worker.stateful(id, req, self.timeout).map(|_| ())
    }

    /// Figures for `program` at `size`: each seed on normal inputs, then each edge
    /// variant on the first seed, one request per case so `deadline` is checked between.
    pub fn verify(&mut self, program: &str, size: &str, seeds: &[u64], tol: Tolerance, deadline: Option<Instant>) -> Result<Vec<SeedFigures>, WorkerError> {
        let mut out = vec![];
        for (seed, variant) in cases(seeds) {
            if deadline.is_some_and(|d| Instant::now() > d) {
                return Err(WorkerError::Candidate("not verified: the time budget ran out".into()));
            }
            let mut req = json!({"program": program, "size": size, "cases": [[seed, variant]]});
            if let Tolerance::Fixed { atol, rtol, .. } = tol {
                req["fixed"] = json!({"atol": atol, "rtol": rtol});
            }
            let reply = self.worker.cmd("verify", req, self.timeout)?;
            let figs: Vec<SeedFigures> = serde_json::from_value(reply["seeds"].clone()).map_err(|e| WorkerError::Internal(format!("bad verify reply: {e}")))?;
            out.extend(figs);
        }
        Ok(out)
    }

    /// Computes the float64 references of every verification case at `size` at once (on
    /// several cores); a failure only means each is computed when first needed.
    pub fn prepare(&mut self, size: &str, seeds: &[u64], deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let req = json!({"size": size, "cases": cases(seeds)});
        let _ = self.worker.cmd("prepare", req, left.min(self.timeout * 4));
    }

    /// Interleaved timing samples (seconds per call) of `programs` at `size`, sampling
    /// until sigma/mu < 5% for each or `budget` is spent. Each program's samples queue
    /// enough calls to last about [`SAMPLE_SECONDS`], so the fixed cost of starting and
    /// waiting for the device adds the same fraction to every program's time (samples
    /// of a fixed call count overstate fast programs' times, and so narrow the ratios).
    pub fn time(&mut self, programs: &[String], size: &str, budget: Duration) -> Result<HashMap<String, Vec<f64>>, WorkerError> {
        let start = Instant::now();
        let ones: HashMap<String, u64> = programs.iter().map(|p| (p.clone(), 1)).collect();
        let first = self.time_rounds(programs, size, &ones, 1)?;
        let iters = sample_calls(&first);
        let mut samples: HashMap<String, Vec<f64>> = programs.iter().map(|p| (p.clone(), vec![])).collect();
        let mut rounds = 6;
        loop {
            let round_cost = SAMPLE_SECONDS * programs.len() as f64 * rounds as f64;
            if !samples[&programs[0]].is_empty() && start.elapsed().as_secs_f64() + round_cost > budget.as_secs_f64() {
                break;
            }
            for (p, xs) in self.time_rounds(programs, size, &iters, rounds)? {
                samples.get_mut(&p).unwrap().extend(xs);
            }
            let steady = samples.values().all(|xs| superopt_bench::cv(xs) < superopt_bench::TARGET_CV);
            if steady || samples[&programs[0]].len() >= 400 {
                break;
            }
            rounds *= 2;
        }
        Ok(samples)
    }

    fn time_rounds(&mut self, programs: &[String], size: &str, iters: &HashMap<String, u64>, rounds: u64) -> Result<HashMap<String, Vec<f64>>, WorkerError> {
        let req = json!({"programs": programs, "size": size, "seed": 0, "iters": iters, "rounds": rounds});
        let reply: Json = self.worker.cmd("time", req, self.timeout)?;
        serde_json::from_value(reply["samples"].clone()).map_err(|e| WorkerError::Internal(format!("bad time reply: {e}")))
    }

    pub fn save_constants(&mut self, keys: &[String], path: &Path) -> Result<(), WorkerError> {
        let req = json!({"keys": keys, "path": path.to_string_lossy()});
        self.worker.cmd("save_constants", req, self.timeout).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_samples_for_about_the_same_time() {
        let first: HashMap<String, Vec<f64>> = [("slow".to_string(), vec![SAMPLE_SECONDS / 4.0]), ("fast".to_string(), vec![SAMPLE_SECONDS / 400.0])].into();
        let calls = sample_calls(&first);
        assert_eq!((calls["slow"], calls["fast"]), (4, 400));
        let tiny: HashMap<String, Vec<f64>> = [("tiny".to_string(), vec![0.0])].into();
        assert_eq!(sample_calls(&tiny)["tiny"], 10_000);
    }
}
