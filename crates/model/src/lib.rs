//! `superopt model`: an mlx-lm model's block kinds, each optimized by a run of its own at
//! the model's shapes ([`harness`]), a patch that makes the model call the verified
//! winners ([`patch`]), and the end-to-end proof of that patch ([`proof`]): the stock,
//! compiled and patched model side by side, tokens/s and greedy tokens. Runs are cached
//! by block source, shapes and device ([`cache`]).

pub mod cache;
pub mod harness;
pub mod patch;
pub mod proof;
pub mod report;

use anyhow::{Context, Result};
use harness::ShapeClass;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use superopt_run::output::{module_notes, write_atomic, write_module};
use superopt_run::{optimize, Config, Outcome, SessionConfig};
use superopt_worker::protocol::{BlockKind, CallKind, Hello, HelloReply, ModelBlocks, ModelBlocksReply, WarmUp};
use superopt_worker::{find_python, Worker};

/// What `superopt model` is asked to do.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// The mlx-lm model folder (config.json and safetensors).
    pub model: PathBuf,
    /// PATCH.py; the winners go in a folder beside it (`PATCH_blocks`).
    pub output: PathBuf,
    pub python: Option<PathBuf>,
    /// Seconds for each block kind's run at each shape class.
    pub time_budget: Duration,
    pub request_timeout: Duration,
    pub prompt_tokens: usize,
    pub decode_batches: Vec<usize>,
    pub proof: proof::ProofConfig,
}

/// One block kind at one shape class: what its run found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlockRun {
    pub kind: String,
    pub shapes: ShapeClass,
    /// (batch, tokens) at small, typical and large; for a block with a KV cache, (batch,
    /// positions the cache holds).
    pub sizes: Vec<(usize, usize)>,
    /// The verified module's file name in the winners' folder, where one won.
    pub module: Option<String>,
    /// The speedup at each size where the winner runs (1.0 where the original does).
    pub speedups: Vec<f64>,
    /// The run's decision, in its words.
    pub decision: String,
    /// Whether this came from the cache of an earlier run.
    pub cached: bool,
    pub seconds: f64,
}

/// A block kind of the model and what became of it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlockReport {
    pub kind: String,
    pub call: CallKind,
    /// The instances (paths in the model) that share this kind's program.
    pub instances: Vec<String>,
    /// The weights' names in `tree_flatten` order.
    pub weights: Vec<String>,
    pub runs: Vec<BlockRun>,
    /// Why it was not run, where it was not.
    pub skipped: Option<String>,
}

/// The whole command's record (`--json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelCapsule {
    pub tool: String,
    pub version: String,
    pub model: String,
    pub device: String,
    pub mlx: String,
    pub python: String,
    pub layers: usize,
    pub blocks: Vec<BlockReport>,
    pub patch: String,
    /// Why the patch patches nothing, where it does not.
    pub withdrawn: Option<String>,
    pub proof: Option<proof::Proof>,
    /// Seconds the stock model's warm-up took (within `seconds`).
    #[serde(default)]
    pub warm_seconds: Option<f64>,
    pub seconds: f64,
}

/// Why a block kind is not optimized on its own.
fn skip_reason(b: &BlockKind) -> Option<String> {
    match b.call {
        CallKind::Pure | CallKind::Cached => None,
        CallKind::Other => Some("called with arguments other than (x) or (x, mask, cache): not optimized yet".into()),
    }
}

/// The shape classes a block kind is run at: a block with a KV cache at decode only (a
/// prefill fills an empty cache, which the original call allocates).
fn classes(b: &BlockKind) -> &'static [ShapeClass] {
    match b.call {
        CallKind::Pure => &ShapeClass::ALL,
        CallKind::Cached => &[ShapeClass::Decode],
        CallKind::Other => &[],
    }
}

/// A block kind's harness at a shape class, and its sizes: (batch, tokens), or for a block
/// with a KV cache (batch, positions the cache holds).
fn harness_of(
    cfg: &ModelConfig,
    dir: &str,
    b: &BlockKind,
    class: ShapeClass,
    hidden: i64,
) -> (String, Vec<(usize, usize)>) {
    let sizes = class.sizes(&cfg.decode_batches, cfg.prompt_tokens);
    if b.call == CallKind::Cached {
        let past = harness::cache_positions(cfg.prompt_tokens);
        let batches = sizes.map(|(batch, _)| batch);
        let held = batches.iter().zip(past).map(|(b, (p, _))| (*b, p)).collect();
        return (harness::source_cached(dir, b, batches, past, hidden), held);
    }
    (harness::source(dir, b, class, sizes, hidden), sizes.to_vec())
}

/// The winners' folder beside PATCH.py (`PATCH_blocks`).
pub fn blocks_folder(output: &Path) -> PathBuf {
    let stem = output.file_stem().map_or("patch".into(), |s| s.to_string_lossy().to_string());
    superopt_run::output::folder_of(output).join(format!("{stem}_blocks"))
}

/// A file name for a block kind's module at a shape class (`MLP_1a2b3c_decode.py`: the class,
/// then the kind's signature, which tells apart kinds of the same class name).
fn file_stem(b: &BlockKind, class: ShapeClass) -> String {
    let class_name = b.kind.rsplit('.').next().unwrap_or(&b.kind);
    let safe: String = class_name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let sig: String = b.signature.chars().take(6).collect();
    format!("{safe}_{sig}_{}", class.name())
}

/// How long loading and warming the model may take (building a GPU's kernels takes minutes).
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(900);

/// The shapes of every block run: MLX builds its device kernels for them once, in the worker
/// that lists the blocks, and keeps them for the runs' processes (its CUDA backend, on disk).
fn warm_up(cfg: &ModelConfig) -> WarmUp {
    let tokens = |class: ShapeClass| class.sizes(&cfg.decode_batches, cfg.prompt_tokens);
    WarmUp {
        prefill_tokens: tokens(ShapeClass::Prefill).iter().map(|(_, t)| *t).collect(),
        decode_batches: tokens(ShapeClass::Decode).iter().map(|(b, _)| *b).collect(),
    }
}

/// The model's blocks, from a worker that loads it.
pub fn blocks(cfg: &ModelConfig) -> Result<(HelloReply, ModelBlocksReply)> {
    let python = find_python(cfg.python.as_deref(), &|_| {})?.path;
    let mut worker = Worker::start(&python)?;
    let hello = worker.call(&Hello {}, cfg.request_timeout)?;
    let model = cfg.model.canonicalize().with_context(|| format!("no model folder at {}", cfg.model.display()))?;
    let reply = worker
        .call(&ModelBlocks { model: model.display().to_string(), warm: Some(warm_up(cfg)) }, WARM_UP_TIMEOUT)
        .with_context(|| format!("cannot load {} with mlx-lm", model.display()))?;
    Ok((hello, reply))
}

/// One block kind's run at one shape class, from the cache where an earlier run left it.
fn run_block(
    cfg: &ModelConfig,
    hello: &HelloReply,
    model: &ModelBlocksReply,
    b: &BlockKind,
    class: ShapeClass,
    progress: &dyn Fn(&str),
) -> Result<BlockRun> {
    let started = Instant::now();
    let model_dir = cfg.model.canonicalize()?.display().to_string();
    let hidden = model.hidden.context("the model's config has no hidden_size")?;
    let (text, sizes) = harness_of(cfg, &model_dir, b, class, hidden);
    let folder = blocks_folder(&cfg.output);
    std::fs::create_dir_all(&folder)?;
    let stem = file_stem(b, class);
    let harness_path = folder.join(format!("{stem}_harness.py"));
    write_atomic(&harness_path, text.as_bytes())?;
    let harness_path = harness_path.canonicalize()?;
    let weights = serde_json::to_string(&b.parameters)?;
    let budget = cfg.time_budget.as_secs().to_string();
    let (build, sources) = (cache::build(), [&b.source_hash, &b.signature, &model.config_sha256]);
    let runtime = [&hello.device, &hello.mlx, &hello.python, &model.mlx_lm];
    let key = cache::key(
        &[
            [text.as_str(), &weights, &build, &budget].as_slice(),
            &sources.map(|x| x.as_str()),
            &runtime.map(|x| x.as_str()),
        ]
        .concat(),
    );
    if let Some(mut hit) = cache::restore(&key, &folder, &harness_path) {
        hit.cached = true;
        return Ok(hit);
    }
    let config = Config {
        session: SessionConfig {
            harness: harness_path.clone(),
            python: cfg.python.clone(),
            request_timeout: cfg.request_timeout,
        },
        objective: superopt_bench::Objective::All,
        tolerance: superopt_verify::Tolerance::Relative,
        time_budget: cfg.time_budget,
        seeds: 5,
    };
    let mut run = BlockRun {
        kind: b.kind.clone(),
        shapes: class,
        sizes,
        module: None,
        speedups: vec![1.0; 3],
        decision: String::new(),
        cached: false,
        seconds: 0.0,
    };
    match optimize(&config, progress) {
        // One block kind's failure (its harness, the worker) leaves the others and the proof.
        Err(e) => {
            run.decision = format!("failed: {e:#}");
            run.seconds = started.elapsed().as_secs_f64();
            return Ok(run);
        }
        Ok(Outcome::NoChange(why)) => run.decision = format!("no change: {why}"),
        Ok(Outcome::Done(mut done)) => {
            if let Some(k) = done.winner {
                let name = format!("{stem}.py");
                let notes = module_notes(&done.capsule.candidates[k]);
                write_module(&mut done.session, &done.candidates[k], &folder.join(&name), notes)?;
                let sizes = &done.capsule.candidates[k].sizes;
                run.speedups = sizes.iter().map(|z| z.timing.as_ref().map_or(1.0, |t| t.speedup)).collect();
                run.module = Some(name);
            }
            run.decision = done.capsule.decision.clone();
            // Every candidate's verdicts and timings, for the reader who asks why (a capsule
            // that cannot be written costs only that).
            if let Ok(capsule) = serde_json::to_vec_pretty(&done.capsule) {
                let _ = write_atomic(&folder.join(format!("{stem}.capsule.json")), &capsule);
            }
            done.finish();
        }
    }
    run.seconds = started.elapsed().as_secs_f64();
    cache::store(&key, &run, &folder);
    Ok(run)
}

/// A run that failed before its optimizer ran (its harness could not be written, say).
fn failed(b: &BlockKind, class: ShapeClass, e: anyhow::Error) -> BlockRun {
    BlockRun {
        kind: b.kind.clone(),
        shapes: class,
        sizes: vec![],
        module: None,
        speedups: vec![1.0; 3],
        decision: format!("failed: {e:#}"),
        cached: false,
        seconds: 0.0,
    }
}

/// Runs every block kind at its shape classes (one array: decode and prefill; with a KV
/// cache: decode), writes PATCH.py and its winners, and proves the patch end to end.
pub fn optimize_model(cfg: &ModelConfig, progress: &dyn Fn(&str), step: &dyn Fn(usize, usize)) -> Result<ModelCapsule> {
    let started = Instant::now();
    progress("loading the model and running it once at the runs' shapes");
    let (hello, model) = blocks(cfg)?;
    let runs_total = model.blocks.iter().map(|b| classes(b).len()).sum();
    let mut done_runs = 0;
    let mut reports = vec![];
    for b in &model.blocks {
        let mut report = BlockReport {
            kind: b.kind.clone(),
            call: b.call,
            instances: b.instances.clone(),
            weights: b.parameters.iter().map(|p| p.name.clone()).collect(),
            runs: vec![],
            skipped: skip_reason(b),
        };
        if report.skipped.is_none() {
            for &class in classes(b) {
                step(done_runs, runs_total);
                let label = format!("{} at {} shapes", b.kind, class.name());
                let say = |msg: &str| progress(&format!("{label}: {msg}"));
                let run = run_block(cfg, &hello, &model, b, class, &say).unwrap_or_else(|e| failed(b, class, e));
                report.runs.push(run);
                done_runs += 1;
            }
        }
        reports.push(report);
    }
    step(done_runs, runs_total);
    let mut capsule = ModelCapsule {
        tool: "superopt".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        model: cfg.model.display().to_string(),
        device: hello.device.clone(),
        mlx: hello.mlx.clone(),
        python: hello.python.clone(),
        layers: model.count,
        blocks: reports,
        patch: cfg.output.display().to_string(),
        withdrawn: None,
        proof: None,
        warm_seconds: model.warm_seconds,
        seconds: 0.0,
    };
    // The patch is proved from a file beside PATCH.py, which it replaces only once proved.
    let proving = proving_path(&cfg.output);
    write_patch_to(&proving, cfg, &capsule)?;
    progress("proving the patch end to end: stock, mx.compile and patched model side by side");
    let proved = proof::prove(cfg, &model, &proving);
    let _ = std::fs::remove_file(&proving);
    match proved {
        Ok(p) => {
            // With nothing patched, the patched model is stock: a difference is noise, not a loss.
            capsule.withdrawn = if patched(&capsule).is_empty() { None } else { p.withdraw_reason() };
            capsule.proof = Some(p);
        }
        Err(e) => capsule.withdrawn = Some(format!("the end-to-end proof failed: {e:#}")),
    }
    write_patch_to(&cfg.output, cfg, &capsule)?;
    capsule.seconds = started.elapsed().as_secs_f64();
    Ok(capsule)
}

/// The block kinds PATCH.py patches, with their winners: none once withdrawn.
fn patched(capsule: &ModelCapsule) -> Vec<patch::Patched> {
    if capsule.withdrawn.is_some() {
        return vec![];
    }
    let with_modules = capsule.blocks.iter().map(|b| patch::Patched {
        kind: b.kind.clone(),
        call: b.call,
        weights: b.weights.clone(),
        instances: b.instances.clone(),
        modules: b.runs.iter().filter_map(|r| r.module.clone()).collect(),
    });
    with_modules.filter(|p| !p.modules.is_empty()).collect()
}

/// Where the patch waits for its proof: beside PATCH.py (its winners' folder is then where
/// PATCH.py finds it), hidden.
fn proving_path(output: &Path) -> PathBuf {
    let name = output.file_name().map_or("patch.py".into(), |n| n.to_string_lossy().to_string());
    superopt_run::output::folder_of(output).join(format!(".{name}.proving.py"))
}

/// Writes the patch the capsule says (atomically) to `path`.
fn write_patch_to(path: &Path, cfg: &ModelConfig, capsule: &ModelCapsule) -> Result<()> {
    let folder = blocks_folder(&cfg.output);
    let folder_name = folder.file_name().unwrap().to_string_lossy().to_string();
    let text = patch::source(&folder_name, &patched(capsule), &proof::notes(capsule));
    write_atomic(path, text.as_bytes())
}
