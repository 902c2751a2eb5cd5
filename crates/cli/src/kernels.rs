//! The generated-kernel stage of a run: lowering candidates to kernels where the
//! device can run them, and tuning each kernel's launch on the device, with a cache
//! per device so that a second run does not time again.

use crate::session::{read_cache, write_cache, Session, SIZES};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use superopt_ir::Dtype;
use superopt_kernel::{params, Call, LaunchShape, Params, Target, Tuned};
use superopt_search::lowering::lower_candidate;
use superopt_search::{Candidate, Compile};
use superopt_worker::WorkerError;

/// The kernel version of the most rewritten eager candidate (the e-graph's, else the
/// cleaned-up or traced program), or why there is none. One: each kernel is compiled
/// and tuned on the device, which costs seconds.
pub fn lowered(candidates: &[Candidate], backend: &str) -> Result<Vec<Candidate>, String> {
    // SUPEROPT_KERNELS=mlx lowers to plain MLX operations: the kernels' meaning, checked
    // by the verification on any device (the tests' way to verify lowering on the CPU).
    let forced = std::env::var("SUPEROPT_KERNELS").ok().and_then(|t| Target::parse(&t));
    let Some(target) = forced.or_else(|| Target::of_backend(backend)) else {
        return Err(format!("custom-kernel candidates skipped: MLX's {backend} backend runs no custom kernels (mx.fast.cuda_kernel / metal_kernel need a GPU)"));
    };
    Ok(lowered_for(candidates, target).into_iter().collect())
}

fn lowered_for(candidates: &[Candidate], target: Target) -> Option<Candidate> {
    let eager = |name: &str| candidates.iter().find(|c| c.name == name && c.compile == Compile::Eager);
    ["egraph", "cse", "as-traced"].into_iter().filter_map(eager).find_map(|c| lower_candidate(c, target))
}

/// The Metal source of a candidate's kernels (from the same kernel IR as its CUDA ones).
pub fn metal_source(c: &Candidate) -> Option<String> {
    let calls = superopt_emit::kernel_calls(&c.plan);
    if calls.is_empty() || calls.iter().all(|k| k.target == Target::Metal) {
        return None;
    }
    Some(calls.iter().map(|k| format!("// {}\n{}", k.kernel.name, superopt_kernel::metal::source(&k.kernel))).collect::<Vec<_>>().join("\n"))
}

/// `superopt kernels`: the kernels the harness lowers to, for one target.
pub fn command(a: crate::cli::KernelsArgs) -> anyhow::Result<std::process::ExitCode> {
    let target = Target::parse(&a.target).ok_or_else(|| anyhow::anyhow!("--target must be cuda, metal or mlx; got {:?}", a.target))?;
    let mut s = Session::start(&a.common)?;
    let traces = SIZES.iter().map(|z| s.trace(z)).collect::<anyhow::Result<Vec<_>>>()?;
    let plan = superopt_trace::align(&traces, 1);
    let candidates = crate::pipeline::proposals(&plan, std::time::Duration::from_secs(10), s.device());
    let Some(c) = lowered_for(&candidates, target) else {
        println!("no kernel: nothing in this program lowers to one (elementwise chains, row reductions, norms, softmax)");
        return Ok(std::process::ExitCode::SUCCESS);
    };
    let runs_here = Target::of_backend(&s.hello.backend) == Some(target) || target == Target::Mlx;
    println!("// {} kernels for {:?} from {}; {}", superopt_emit::kernel_calls(&c.plan).len(), target, c.name, if runs_here { "this device can run them (superopt run verifies and times them)" } else { "not verified on this device" });
    for r in c.rules.iter().filter(|r| r.starts_with("kernel")) {
        println!("// {r}");
    }
    for k in superopt_emit::kernel_calls(&c.plan) {
        let text = match target {
            Target::Cuda => superopt_kernel::cuda::source(&k.kernel),
            Target::Metal => superopt_kernel::metal::source(&k.kernel),
            Target::Mlx => superopt_kernel::reference::launcher(&k.kernel, 0),
        };
        println!("\n// kernel {}\n{text}", k.kernel.name);
    }
    if let Some(out) = &a.output {
        let consts = format!("{}.safetensors", out.file_stem().map_or("kernels".into(), |x| x.to_string_lossy()));
        let info = superopt_emit::ModuleInfo { harness: &s.harness.to_string_lossy(), constants_file: &consts, notes: vec![format!("Kernels for {target:?}; launch parameters untuned.")] };
        let e = superopt_emit::emit(&c, &info)?;
        if !e.tensors.is_empty() {
            let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).map_or(std::path::PathBuf::from("."), |p| p.to_path_buf());
            s.save_constants(&e.tensors, &dir.join(&consts)).map_err(crate::session::harness_fault)?;
        }
        std::fs::write(out, e.source)?;
        println!("\nwrote {}", out.display());
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Whether `c` calls generated GPU kernels, whose launches the device must tune (not the
/// plain-MLX form, which has no launch parameters).
pub fn tunable(c: &Candidate) -> bool {
    superopt_emit::kernel_calls(&c.plan).iter().any(|k| k.target != Target::Mlx)
}

#[derive(Deserialize)]
struct LaunchInput {
    shape: Vec<i64>,
    dtype: String,
}

#[derive(Deserialize)]
struct Launch {
    kernel: usize,
    shape: Vec<i64>,
    inputs: Vec<LaunchInput>,
}

/// Tuned launch parameters, per device, in the user cache directory.
pub struct TuneCache {
    name: String,
    entries: BTreeMap<String, Params>,
}

impl TuneCache {
    pub fn open(device_key: &str) -> TuneCache {
        let name = format!("kernels-{device_key}.json");
        let entries = read_cache(&name).unwrap_or_default();
        TuneCache { name, entries }
    }

    fn save(&self) {
        write_cache(&self.name, &self.entries);
    }
}

fn cache_key(call: &Call, s: &LaunchShape) -> String {
    let dtypes: Vec<&str> = s.dtypes.iter().map(|d| d.name()).collect();
    format!("{} {}x{} {}", superopt_kernel::launch::source_digest(&call.kernel, call.target), s.rows, s.n, dtypes.join(","))
}

/// Times each kernel of candidate `c` (loaded in the worker) over its launch space at
/// every size and records the fastest parameters in `c`'s kernel nodes. Returns one
/// line per launch tuned or found in the cache.
/// Past `deadline`, launches not in the cache keep the default parameters.
pub fn tune(s: &mut Session, c: &mut Candidate, cache: &mut TuneCache, deadline: std::time::Instant) -> Result<Vec<String>, WorkerError> {
    let calls = superopt_emit::kernel_calls(&c.plan);
    let mut picked: Vec<Vec<Tuned>> = vec![vec![]; calls.len()];
    let mut lines = vec![];
    for size in SIZES {
        let reply = s.worker.cmd("kernel_launches", json!({"program": c.name, "size": size}), until(deadline, s.timeout))?;
        let launches: Vec<Launch> = serde_json::from_value(reply["launches"].clone()).map_err(|e| WorkerError::Internal(format!("bad kernel_launches reply: {e}")))?;
        for l in launches {
            let call = &calls[l.kernel];
            let n = *l.shape.last().unwrap_or(&1);
            let rows = l.shape.iter().product::<i64>() / n.max(1);
            if picked[l.kernel].iter().any(|t| t.rows == rows && t.n == n) {
                continue;
            }
            let mut dtypes: Vec<Dtype> = l.inputs.iter().filter_map(|i| Dtype::parse(&i.dtype)).collect();
            dtypes.extend(call.kernel.outputs.iter().map(|o| o.dtype));
            let shape = LaunchShape { rows, n, dtypes };
            let key = cache_key(call, &shape);
            let (best, how) = match cache.entries.get(&key) {
                Some(p) => (*p, "cached".to_string()),
                None if std::time::Instant::now() > deadline => (params::default(&call.kernel, &shape), "default: no time left to tune".to_string()),
                None => {
                    let (p, secs, tried) = time_space(s, c, l.kernel, &l, call, &shape, deadline)?;
                    cache.entries.insert(key, p);
                    cache.save();
                    (p, format!("best of {tried} in {:.1} µs", secs * 1e6))
                }
            };
            lines.push(format!("{} at {rows}x{n}: vec {}, {} threads, {} rows/block, unroll {} ({how})", call.kernel.name, best.vec, best.threads, best.rows_per_block, best.unroll));
            picked[l.kernel].push(Tuned { rows, n, params: best });
        }
    }
    for (_, p) in c.plan.variants.iter_mut() {
        for node in p.nodes.iter_mut() {
            if let Some(mut call) = Call::of_node(node) {
                if let Some(k) = calls.iter().position(|x| *x == call) {
                    call.tuned = picked[k].clone();
                    node.args = vec![call.to_arg()];
                }
            }
        }
    }
    Ok(lines)
}

/// How long a tuning request may take: until `deadline`, at least 10 s, at most `timeout`.
/// (A request cut short restarts the worker and drops the candidate.)
fn until(deadline: std::time::Instant, timeout: std::time::Duration) -> std::time::Duration {
    deadline.saturating_duration_since(std::time::Instant::now()).max(std::time::Duration::from_secs(10)).min(timeout)
}

/// The fastest configuration of one launch, its seconds and how many ran.
fn time_space(s: &mut Session, c: &Candidate, kernel: usize, l: &Launch, call: &Call, shape: &LaunchShape, deadline: std::time::Instant) -> Result<(Params, f64, usize), WorkerError> {
    let space = params::space(&call.kernel, shape);
    if space.is_empty() {
        return Ok((params::default(&call.kernel, shape), f64::NAN, 0));
    }
    let inputs: Vec<_> = l.inputs.iter().map(|i| json!({"shape": i.shape, "dtype": i.dtype})).collect();
    let req = json!({"program": c.name, "kernel": kernel, "shape": l.shape, "inputs": inputs, "configs": space});
    let reply = s.worker.cmd("tune", req, until(deadline, s.timeout))?;
    let secs: Vec<Option<f64>> = serde_json::from_value(reply["seconds"].clone()).map_err(|e| WorkerError::Internal(format!("bad tune reply: {e}")))?;
    let ran = secs.iter().filter(|x| x.is_some()).count();
    let best = space.iter().zip(&secs).filter_map(|(p, t)| t.map(|t| (*p, t))).min_by(|a, b| a.1.total_cmp(&b.1));
    match best {
        Some((p, t)) => Ok((p, t, ran)),
        None => Err(WorkerError::Candidate(format!("{}: no launch configuration ran", call.kernel.name))),
    }
}

#[cfg(test)]
mod tests {
    use super::until;
    use std::time::{Duration, Instant};

    #[test]
    fn a_tuning_request_ends_at_the_tuning_deadline() {
        let minute = Duration::from_secs(60);
        let soon = until(Instant::now() + Duration::from_secs(30), Duration::from_secs(120));
        assert!(soon <= Duration::from_secs(30) && soon > Duration::from_secs(29));
        assert_eq!(until(Instant::now() + 10 * minute, Duration::from_secs(120)), Duration::from_secs(120));
        // Past the deadline a request still gets its 10 s (its launches are needed at defaults).
        assert_eq!(until(Instant::now(), Duration::from_secs(120)), Duration::from_secs(10));
    }
}
