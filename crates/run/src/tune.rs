//! Stage 4: each generated kernel's launch parameters timed on the device, the best
//! kept per device and shape in the user cache, so that a second run does not time again.

use crate::ledger::Run;
use crate::propose::tunable;
use crate::session::Session;
use crate::stage::stage_candidate;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use superopt_bench::Size;
use superopt_ir::Dtype;
use superopt_kernel::quantized::{Layout, Quantized};
use superopt_kernel::{params, Body, Call, Kernel, LaunchShape, Params, Picked, Target, Tuned};
use superopt_search::Candidate;
use superopt_worker::protocol::{KernelLaunches, Launch, ProgramId, Tune};
use superopt_worker::WorkerError;

/// Tunes the launches of every generated kernel, then emits its candidate again with
/// the parameters picked; a candidate whose kernels fail is dropped, one whose tuning
/// outlasts its request keeps default parameters. Past the tuning
/// deadline nothing more is asked of the worker: launches not tuned or found in the cache
/// by then take default parameters when they run.
pub fn tune(run: &mut Run) {
    let mut cache = TuneCache::open(&run.session.device_key());
    let deadline = run.budget.tune_deadline();
    for k in 0..run.entries.len() {
        if run.entries[k].is_dropped() || !tunable(&run.entries[k].candidate) {
            continue;
        }
        if Instant::now() > deadline {
            // Its launches then take default parameters when they run: asking the worker
            // for them (a first call of each size) could outlast the budget.
            run.entries[k].launches = vec!["default parameters: no time left to tune".into()];
            continue;
        }
        run.say(&format!("tuning the kernels of {}", run.entries[k].candidate.label()));
        let Run { session, entries, workdir, .. } = &mut *run;
        let e = &mut entries[k];
        let id = e.program();
        let tuned = match tune_candidate(session, &mut e.candidate, &id, &mut cache, deadline) {
            // Slow is not wrong: a first call compiles every kernel (seconds each on a fresh
            // GPU). The candidate runs at default parameters; verification judges it.
            Err(WorkerError::TimedOut(why)) => {
                Ok(vec![format!("default parameters: tuning stopped, the worker {why}")])
            }
            other => other.map_err(|e| format!("tuning its kernels: {e}")),
        };
        match tuned.and_then(|lines| stage_candidate(session, &e.candidate, id, k, workdir.path()).map(|_| lines)) {
            Ok(lines) => e.launches = lines,
            Err(why) => e.drop_with(why),
        }
    }
}

/// Tuned launch parameters (row kernels) and layouts (quantized products), per device, in
/// the user cache directory.
pub struct TuneCache {
    name: String,
    entries: BTreeMap<String, Params>,
    layouts_name: String,
    layouts: BTreeMap<String, Layout>,
}

impl TuneCache {
    pub fn open(device_key: &str) -> TuneCache {
        let name = format!("kernels-{device_key}.json");
        let entries = crate::cache::read(&name).unwrap_or_default();
        let layouts_name = format!("quantized-{device_key}.json");
        let layouts = crate::cache::read(&layouts_name).unwrap_or_default();
        TuneCache { name, entries, layouts_name, layouts }
    }

    fn save(&self) {
        crate::cache::write(&self.name, &self.entries);
        crate::cache::write(&self.layouts_name, &self.layouts);
    }
}

fn cache_key(k: &Kernel, target: Target, s: &LaunchShape) -> String {
    let dtypes: Vec<&str> = s.dtypes.iter().map(|d| d.name()).collect();
    let digest = superopt_kernel::launch::source_digest(k, target);
    format!("{digest} {}x{} {}", s.rows, s.n, dtypes.join(","))
}

/// Times each kernel of candidate `c` (loaded in the worker as `id`) over its launch
/// space at every size and records the fastest parameters in `c`'s kernel nodes.
/// Returns one line per launch tuned or found in the cache.
fn tune_candidate(
    s: &mut Session,
    c: &mut Candidate,
    id: &ProgramId,
    cache: &mut TuneCache,
    deadline: Instant,
) -> Result<Vec<String>, WorkerError> {
    let calls = superopt_emit::kernel_calls(&c.plan);
    let mut picked: Vec<Vec<Tuned>> = vec![vec![]; calls.len()];
    let mut lines = vec![];
    // The largest launches first: where parameters matter most, should time run out.
    for size in Size::ALL.into_iter().rev() {
        if Instant::now() > deadline {
            break;
        }
        let req = KernelLaunches { program: id.clone(), size };
        let mut launches = s.worker.call(&req, until(deadline, s.timeout))?.launches;
        launches.sort_by_key(|l| std::cmp::Reverse(l.shape.iter().product::<i64>()));
        for l in launches {
            let call = &calls[l.kernel];
            let n = *l.shape.last().unwrap_or(&1);
            let rows = l.shape.iter().product::<i64>() / n.max(1);
            if picked[l.kernel].iter().any(|t| t.rows == rows && t.n == n) {
                continue;
            }
            let (pick, line) = match &call.body {
                Body::Rows(k) if rows * n < LAUNCH_BOUND => {
                    let p = params::default(k, &launch_shape(&l, k, (rows, n)));
                    (Some(Picked::Rows(p)), rows_line(k, (rows, n), &p, "default: launch-bound, not timed"))
                }
                Body::Rows(k) => {
                    let (p, line) = tune_rows(s, id, &l, (k, call.target), (rows, n), cache, deadline)?;
                    (Some(p), line)
                }
                Body::Quantized(q) if call.target != Target::Mlx => {
                    tune_layout(s, id, &l, (q, call.target), rows, cache, deadline)?
                }
                _ => continue, // only row kernels and quantized products have a launch space
            };
            lines.push(line);
            picked[l.kernel].extend(pick.map(|picked| Tuned { rows, n, picked }));
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

/// A row kernel's launch at `rows` x `n`: its parameters from the cache, timed over its
/// space, or the defaults (no time left), and the line that says which.
fn tune_rows(
    s: &mut Session,
    id: &ProgramId,
    l: &Launch,
    (k, target): (&Kernel, Target),
    (rows, n): (i64, i64),
    cache: &mut TuneCache,
    deadline: Instant,
) -> Result<(Picked, String), WorkerError> {
    let shape = launch_shape(l, k, (rows, n));
    let key = cache_key(k, target, &shape);
    let (best, how) = match cache.entries.get(&key) {
        Some(p) => (*p, "cached".to_string()),
        None if Instant::now() > deadline => (params::default(k, &shape), "default: no time left to tune".to_string()),
        None => match time_space(s, id, l, k, &shape, deadline)? {
            Timed::Whole(p, secs, tried) => {
                cache.entries.insert(key, p);
                cache.save();
                (p, format!("best of {tried} in {:.1} µs", secs * 1e6))
            }
            Timed::Part(p, secs, tried, of) => (p, format!("best of {tried} of {of} in {:.1} µs", secs * 1e6)),
            Timed::None(p) => (p, "default: no time left to tune".to_string()),
        },
    };
    Ok((Picked::Rows(best), rows_line(k, (rows, n), &best, &how)))
}

fn launch_shape(l: &Launch, k: &Kernel, (rows, n): (i64, i64)) -> LaunchShape {
    let mut dtypes: Vec<Dtype> = l.inputs.iter().filter_map(|i| Dtype::parse(&i.dtype)).collect();
    dtypes.extend(k.outputs.iter().map(|o| o.dtype));
    LaunchShape { rows, n, dtypes }
}

/// Below this many elements a row kernel's launch costs what launching costs, whatever its
/// parameters; timing its space (a kernel compiled per configuration, a second or more
/// each on a GPU) would spend the tuning budget of a program of many small kernels on them.
const LAUNCH_BOUND: i64 = 1 << 16;

fn rows_line(k: &Kernel, (rows, n): (i64, i64), p: &Params, how: &str) -> String {
    format!(
        "{} at {rows}x{n}: vec {}, {} threads, {} rows/block, unroll {} ({how})",
        k.name, p.vec, p.threads, p.rows_per_block, p.unroll
    )
}

/// A quantized product's launch at `rows` rows: its layout from the cache, timed over
/// [`Quantized::tuning_space`] on the arrays the launch was recorded with (its indices and
/// packed weights must be real), or none: the launcher's defaults (no time left).
fn tune_layout(
    s: &mut Session,
    id: &ProgramId,
    l: &Launch,
    (q, target): (&Quantized, Target),
    rows: i64,
    cache: &mut TuneCache,
    deadline: Instant,
) -> Result<(Option<Picked>, String), WorkerError> {
    let source = Call { body: Body::Quantized(q.clone()), target, tuned: vec![] }.source(target);
    let operands: Vec<String> = l.inputs.iter().map(|i| format!("{}{:?}", i.dtype, i.shape)).collect();
    let space = q.tuning_space(rows);
    // A wider space than the cached pick was made from is timed again.
    let digest = superopt_kernel::quantized::digest(&source);
    let key = format!("{digest} {target:?} {rows} {} of {}", operands.join(","), space.len());
    let name = &q.name;
    let say = |l: &Layout, how: &str| {
        format!("{name} at {rows} rows: {} warps, {} rows and {} columns a warp ({how})", l.warps, l.rows, l.cols)
    };
    let untuned = |why: &str| (None, format!("{name} at {rows} rows: the default layout ({why})"));
    if let Some(l) = cache.layouts.get(&key) {
        return Ok((Some(Picked::Quantized(*l)), say(l, "cached")));
    }
    if Instant::now() > deadline || space.is_empty() {
        return Ok(untuned("no time left to tune"));
    }
    let Fastest { best, tried, .. } = fastest(s, id, l, &space, deadline)?;
    let of = space.len();
    match best {
        Some((p, t)) => {
            if tried == of {
                cache.layouts.insert(key, p);
                cache.save();
            }
            Ok((Some(Picked::Quantized(p)), say(&p, &format!("best of {tried} of {of} in {:.1} µs", t * 1e6))))
        }
        // Not recorded in this worker (restarted since), or no time: verification judges it.
        None if tried == 0 => Ok(untuned("not timed: no recorded launch, or no time left")),
        None => Ok(untuned("every layout failed to run when timed")),
    }
}

/// How long a tuning request may take: until `deadline`, at least 10 s, at most `timeout`.
/// (A request cut short restarts the worker and drops the candidate.)
fn until(deadline: Instant, timeout: Duration) -> Duration {
    deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(10)).min(timeout)
}

/// How long the worker may go on starting configurations within a request of `until`
/// seconds: the last one started still compiles and runs inside the request.
fn tuning_seconds(until: Duration) -> f64 {
    (until.as_secs_f64() * 0.5).max(until.as_secs_f64() - LAST_CONFIG_S)
}

/// Room for the last configuration a tuning request starts: compiling and timing it.
const LAST_CONFIG_S: f64 = 8.0;

/// One launch's timing: every configuration of its space, some (time ran out), or none.
enum Timed {
    /// The fastest, its seconds and how many ran: kept in the cache.
    Whole(Params, f64, usize),
    /// The fastest of those tried, its seconds, how many ran and of how many (not cached).
    Part(Params, f64, usize, usize),
    /// Default parameters: none was tried in time.
    None(Params),
}

/// The fastest configuration of one launch, within the tuning deadline.
fn time_space(
    s: &mut Session,
    id: &ProgramId,
    l: &Launch,
    k: &Kernel,
    shape: &LaunchShape,
    deadline: Instant,
) -> Result<Timed, WorkerError> {
    let space = params::space(k, shape);
    if space.is_empty() {
        return Ok(Timed::Whole(params::default(k, shape), f64::NAN, 0));
    }
    let Fastest { best, tried, ran } = fastest(s, id, l, &space, deadline)?;
    let failed = |name: &str| WorkerError::Candidate(format!("{name}: no launch configuration ran"));
    Ok(match best {
        Some((p, t)) if tried == space.len() => Timed::Whole(p, t, ran),
        Some((p, t)) => Timed::Part(p, t, ran, space.len()),
        None if tried == 0 => Timed::None(params::default(k, shape)),
        None => return Err(failed(&k.name)),
    })
}

/// One tuning request's outcome: the fastest configuration that ran with its seconds, how
/// many were tried (in order, until the request's time), and how many ran.
struct Fastest<C> {
    best: Option<(C, f64)>,
    tried: usize,
    ran: usize,
}

/// Times launch `l` under each of `configs` in one request.
fn fastest<C: serde::Serialize + Copy>(
    s: &mut Session,
    id: &ProgramId,
    l: &Launch,
    configs: &[C],
    deadline: Instant,
) -> Result<Fastest<C>, WorkerError> {
    let until = until(deadline, s.timeout);
    let (program, kernel, shape, inputs) = (id.clone(), l.kernel, l.shape.clone(), l.inputs.clone());
    let req = Tune { program, kernel, shape, inputs, configs: configs.to_vec(), seconds: tuning_seconds(until) };
    let reply = s.worker.call(&req, until)?;
    let timed = configs.iter().zip(&reply.seconds).filter_map(|(c, t)| t.map(|t| (*c, t)));
    let ran = reply.seconds.iter().filter(|t| t.is_some()).count();
    Ok(Fastest { best: timed.min_by(|a, b| a.1.total_cmp(&b.1)), tried: reply.tried, ran })
}

#[cfg(test)]
mod tests {
    use super::{tuning_seconds, until};
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

    #[test]
    fn the_worker_starts_no_configuration_it_could_not_finish_in_the_request() {
        assert_eq!(tuning_seconds(Duration::from_secs(10)), 5.0, "half of a short request");
        assert_eq!(tuning_seconds(Duration::from_secs(100)), 92.0, "room for the last one");
    }
}
