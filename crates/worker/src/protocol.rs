//! The worker protocol: one request type and one reply type per command, and the names
//! and constants the Python worker shares (`python/superopt_worker.py` uses the same
//! spellings; `tests/protocol.rs` checks that both sides agree).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// How long one timing sample of one program lasts: long against the few tens of
/// microseconds a GPU takes to start and to report back (`SAMPLE_SECONDS` in Python).
pub const SAMPLE_SECONDS: f64 = 0.01;

/// A command the worker answers, by the name it has on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Hello,
    Load,
    Trace,
    SaveConstants,
    LoadConstants,
    Program,
    Prepare,
    Verify,
    Time,
    Calibrate,
    KernelLaunches,
    Tune,
    Phew,
    ReferenceDevice,
    Sensitivity,
    Spread,
    Dispatch,
    SameOutputs,
    ModelBlocks,
    ModelProof,
    Warm,
    Varies,
}

impl Command {
    pub const ALL: [Command; 22] = [
        Command::Hello,
        Command::Load,
        Command::Trace,
        Command::SaveConstants,
        Command::LoadConstants,
        Command::Program,
        Command::Prepare,
        Command::Verify,
        Command::Time,
        Command::Calibrate,
        Command::KernelLaunches,
        Command::Tune,
        Command::Phew,
        Command::ReferenceDevice,
        Command::Sensitivity,
        Command::Spread,
        Command::Dispatch,
        Command::SameOutputs,
        Command::ModelBlocks,
        Command::ModelProof,
        Command::Warm,
        Command::Varies,
    ];

    /// The name on the wire (`COMMANDS` in Python).
    pub fn name(self) -> &'static str {
        match self {
            Command::Hello => "hello",
            Command::Load => "load",
            Command::Trace => "trace",
            Command::SaveConstants => "save_constants",
            Command::LoadConstants => "load_constants",
            Command::Program => "program",
            Command::Prepare => "prepare",
            Command::Verify => "verify",
            Command::Time => "time",
            Command::Calibrate => "calibrate",
            Command::KernelLaunches => "kernel_launches",
            Command::Tune => "tune",
            Command::Phew => "phew",
            Command::ReferenceDevice => "reference_device",
            Command::Sensitivity => "sensitivity",
            Command::Spread => "spread",
            Command::Dispatch => "dispatch",
            Command::SameOutputs => "same_outputs",
            Command::ModelBlocks => "model_blocks",
            Command::ModelProof => "model_proof",
            Command::Warm => "warm",
            Command::Varies => "varies",
        }
    }
}

/// A request: its command and the type of its reply.
pub trait Request: Serialize {
    const COMMAND: Command;
    type Reply: DeserializeOwned;
}

/// The harness's problem sizes (`SIZES` in Python).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    Small,
    Typical,
    Large,
}

impl Size {
    pub const ALL: [Size; 3] = [Size::Small, Size::Typical, Size::Large];

    pub fn name(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Typical => "typical",
            Size::Large => "large",
        }
    }

    pub fn parse(s: &str) -> Option<Size> {
        Size::ALL.into_iter().find(|z| z.name() == s)
    }

    /// Its place in [`Size::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.pad(self.name())
    }
}

/// The inputs of one verification case: the harness's own, or an edge version of its
/// float inputs (`VARIANTS` in Python).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    #[default]
    Normal,
    Zeros,
    Large,
    Tiny,
    Negative,
    Ties,
    Nonfinite,
}

impl Variant {
    pub const ALL: [Variant; 7] = [
        Variant::Normal,
        Variant::Zeros,
        Variant::Large,
        Variant::Tiny,
        Variant::Negative,
        Variant::Ties,
        Variant::Nonfinite,
    ];

    /// Edge-case inputs checked at every size besides the normal seeds: all zeros,
    /// magnitudes scaled by 1e4 and by 1e-4, all negative, rounded to integers (ties for
    /// max/argmax), and NaN/+Inf/-Inf at three places (and up to four drawn ones).
    pub const EDGES: [Variant; 6] =
        [Variant::Zeros, Variant::Large, Variant::Tiny, Variant::Negative, Variant::Ties, Variant::Nonfinite];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Normal => "normal",
            Variant::Zeros => "zeros",
            Variant::Large => "large",
            Variant::Tiny => "tiny",
            Variant::Negative => "negative",
            Variant::Ties => "ties",
            Variant::Nonfinite => "nonfinite",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A program the worker can run. The reserved ones have fixed names on the wire (as
/// `program()` in Python reads them); a candidate goes by its label.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProgramId {
    /// The harness's `fn`.
    Original,
    /// `mx.compile(fn)`, made by the worker.
    CompiledOriginal,
    /// phew's rewrite of `fn` (the suite's contender).
    Phew,
    /// The harness's `fast_fn` (the suite's contender).
    Fast,
    /// A module `superopt verify` checks.
    Checked,
    /// A candidate of the run, by its label.
    Candidate(String),
}

impl ProgramId {
    pub const RESERVED: [ProgramId; 5] =
        [ProgramId::Original, ProgramId::CompiledOriginal, ProgramId::Phew, ProgramId::Fast, ProgramId::Checked];

    pub fn name(&self) -> &str {
        match self {
            ProgramId::Original => "original",
            ProgramId::CompiledOriginal => "compiled_original",
            ProgramId::Phew => "phew",
            ProgramId::Fast => "fast",
            ProgramId::Checked => "candidate",
            ProgramId::Candidate(label) => label,
        }
    }

    pub fn parse(s: &str) -> ProgramId {
        ProgramId::RESERVED.into_iter().find(|p| p.name() == s).unwrap_or_else(|| ProgramId::Candidate(s.to_string()))
    }
}

impl fmt::Display for ProgramId {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.pad(self.name())
    }
}

impl Serialize for ProgramId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ProgramId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ProgramId::parse(&String::deserialize(d)?))
    }
}

/// A reply with nothing in it.
#[derive(Debug, Deserialize)]
pub struct Empty {}

/// `hello`: what runs the worker.
#[derive(Debug, Serialize)]
pub struct Hello {}

/// Which MLX backend runs the programs: which custom-kernel candidates can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Cpu,
    Cuda,
    Metal,
}

#[derive(Debug, Deserialize)]
pub struct HelloReply {
    pub python: String,
    pub mlx: String,
    pub device: String,
    pub backend: Backend,
}

impl Request for Hello {
    const COMMAND: Command = Command::Hello;
    type Reply = HelloReply;
}

/// `load`: imports the harness (`fn`, `input_factory`).
#[derive(Clone, Debug, Serialize)]
pub struct Load {
    pub harness: String,
    /// A folder where the float64 references are kept for the run, so that a worker
    /// restarted after a crash reads them back (replayed with this request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub references: Option<String>,
}

impl Request for Load {
    const COMMAND: Command = Command::Load;
    type Reply = LoadReply;
}

/// What the harness says of itself beyond `fn` and `input_factory`.
#[derive(Debug, Default, Deserialize)]
pub struct LoadReply {
    /// Its `STEP_DIMS`: dims of fn's array arguments that change from one call to the next
    /// where fn runs (a KV cache's length in a decode loop).
    #[serde(default)]
    pub step_dims: Vec<superopt_ir::DimTerm>,
    /// Its `DEVICE_TIME`: timings count the device's part of each call only (fn runs where
    /// the host's work overlaps the device's, as a model's layers do).
    #[serde(default)]
    pub device_time: bool,
}

/// `trace`: `fn` (checked deterministic) or a loaded program through `mx.export_function`.
#[derive(Debug, Serialize)]
pub struct Trace {
    pub size: Size,
    pub seed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<ProgramId>,
}

impl Request for Trace {
    const COMMAND: Command = Command::Trace;
    type Reply = superopt_ir::TraceEvents;
}

/// `save_constants`: the traced constants of these keys, as one safetensors file.
#[derive(Debug, Serialize)]
pub struct SaveConstants {
    pub keys: Vec<String>,
    pub path: String,
}

impl Request for SaveConstants {
    const COMMAND: Command = Command::SaveConstants;
    type Reply = Empty;
}

/// `load_constants`: the constants of a file `save_constants` wrote, kept again as traced
/// ones (replayed after a restart, so that a restarted worker can still save them).
#[derive(Debug, Serialize)]
pub struct LoadConstants {
    pub path: String,
}

impl Request for LoadConstants {
    const COMMAND: Command = Command::LoadConstants;
    type Reply = Empty;
}

/// `program`: loads a module as program `id`, calling `entry`.
#[derive(Clone, Debug, Serialize)]
pub struct LoadProgram {
    pub id: ProgramId,
    pub path: String,
    pub entry: String,
}

impl Request for LoadProgram {
    const COMMAND: Command = Command::Program;
    type Reply = Empty;
}

/// One verification case: a seed and the variant of its inputs.
pub type Case = (u64, Variant);

/// `prepare`: the float64 references of these cases, computed and kept.
#[derive(Debug, Serialize)]
pub struct Prepare {
    pub size: Size,
    pub cases: Vec<Case>,
    /// How many threads numpy's BLAS takes for these cases (none: as the worker started).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Whether fn's trace at this size makes discrete choices (argmax, argsort,
    /// argpartition), which the reference replays (none: unknown, it records them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct PrepareReply {
    /// How many of the cases have their reference now.
    pub prepared: usize,
    /// Seconds the worker has spent on this size's float64 references so far.
    #[serde(default)]
    pub reference_seconds: f64,
    /// The worker's peak resident memory so far, in GiB (0: unknown).
    #[serde(default)]
    pub peak_gib: f64,
}

impl Request for Prepare {
    const COMMAND: Command = Command::Prepare;
    type Reply = PrepareReply;
}

/// `sensitivity`: per output of one case, how far fn's float64 outputs move (relative L2,
/// in units of one float32 rounding) when its inputs move by one float32 rounding.
#[derive(Debug, Serialize)]
pub struct Sensitivity {
    pub size: Size,
    pub case: Case,
}

#[derive(Debug, Deserialize)]
pub struct SensitivityReply {
    /// None for integer outputs, or where fn cannot run in float64.
    pub outputs: Vec<Option<f64>>,
}

impl Request for Sensitivity {
    const COMMAND: Command = Command::Sensitivity;
    type Reply = SensitivityReply;
}

/// `spread`: per output of one case, the (relative L2, max) error against float64 of fn's
/// own program with each result it computes moved by up to one float32 rounding at random:
/// how far another rounding order of fn takes it.
#[derive(Debug, Serialize)]
pub struct Spread {
    pub size: Size,
    pub case: Case,
}

#[derive(Debug, Deserialize)]
pub struct SpreadReply {
    /// None for integer outputs, or where fn cannot run in float64.
    pub outputs: Vec<Option<(f64, f64)>>,
}

impl Request for Spread {
    const COMMAND: Command = Command::Spread;
    type Reply = SpreadReply;
}

/// `dispatch`: whether a by-size module calls the original `fn` at `size` and returns its
/// outputs as they are, and the seconds per call it spends choosing there (timed with the
/// original standing in as a function that returns at once).
#[derive(Debug, Serialize)]
pub struct Dispatch {
    pub program: ProgramId,
    pub size: Size,
}

#[derive(Debug, Deserialize)]
pub struct DispatchReply {
    /// Seconds per call spent choosing (0 where it does not delegate).
    pub seconds: f64,
    /// It returned fn's own outputs at `size`.
    pub delegates: bool,
}

impl Request for Dispatch {
    const COMMAND: Command = Command::Dispatch;
    type Reply = DispatchReply;
}

/// `same_outputs`: whether `program` returns at `size`, on the first seed's inputs, the
/// outputs `part` returns there, bit for bit (a by-size candidate runs there a part
/// verified there).
#[derive(Debug, Serialize)]
pub struct SameOutputs {
    pub program: ProgramId,
    pub part: ProgramId,
    pub size: Size,
}

#[derive(Debug, Deserialize)]
pub struct SameOutputsReply {
    pub same: bool,
}

impl Request for SameOutputs {
    const COMMAND: Command = Command::SameOutputs;
    type Reply = SameOutputsReply;
}

/// `warm`: one call of a program at `size` (first seed, normal inputs), made for the kernels
/// the backend compiles at first use: they stay in MLX's disk cache, where the worker
/// publishes them (see `cmd_warm` in Python).
#[derive(Clone, Debug, Serialize)]
pub struct Warm {
    pub program: ProgramId,
    pub size: Size,
}

#[derive(Debug, Deserialize)]
pub struct WarmReply {
    /// Seconds the call took.
    pub seconds: f64,
    /// Kernel files it added to MLX's shared disk cache.
    pub published: usize,
    /// Kernels it took from that cache first (compiled by other processes).
    #[serde(default)]
    pub seeded: usize,
}

impl Request for Warm {
    const COMMAND: Command = Command::Warm;
    type Reply = WarmReply;
}

/// `varies`: two calls of `fn` on the same inputs differ in rounding, so each case's
/// original error is the worse of two calls (a candidate as good as either call passes).
#[derive(Clone, Debug, Serialize)]
pub struct Varies {}

impl Request for Varies {
    const COMMAND: Command = Command::Varies;
    type Reply = Empty;
}

/// `reference_device`: where the float64 references run; the GPU only where it computes
/// the small size's first case as the CPU does.
#[derive(Clone, Debug, Serialize)]
pub struct ReferenceDevice {}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct ReferenceDeviceReply {
    pub device: DeviceKind,
    /// Why there (e.g. what differed on the GPU).
    pub why: String,
}

/// Where something runs.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Cpu,
    Gpu,
}

impl DeviceKind {
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "CPU",
            DeviceKind::Gpu => "GPU",
        }
    }
}

impl Request for ReferenceDevice {
    const COMMAND: Command = Command::ReferenceDevice;
    type Reply = ReferenceDeviceReply;
}

/// A fixed tolerance class's bounds, for the figure `|y - o| / (atol + rtol |o|)`.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Fixed {
    pub atol: f64,
    pub rtol: f64,
}

/// `verify`: a program's error figures on these cases.
#[derive(Debug, Serialize)]
pub struct Verify {
    pub program: ProgramId,
    pub size: Size,
    pub cases: Vec<Case>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed: Option<Fixed>,
}

/// The worker's figures for one output of one case.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct OutputFigures {
    pub shape_ok: bool,
    pub dtype_ok: bool,
    /// Integer or boolean: must be bit-identical.
    pub exact: bool,
    #[serde(default)]
    pub bit_identical: Option<bool>,
    #[serde(default)]
    pub nonfinite_ok: Option<bool>,
    /// On a finite edge input where `nonfinite_ok` fails: whether it holds once the
    /// candidate may also be non-finite where the original's finite value has no correct
    /// digit (off the exact value by more than its size) and, where the original lost places
    /// to overflow (`orig_lost`), at up to twice as many others; counted on ill-conditioned
    /// cases and those where the original lost places.
    #[serde(default)]
    pub nonfinite_ok_ill: Option<bool>,
    /// On a finite edge input: whether the original is non-finite somewhere the exact value
    /// is a finite number of the output's dtype (it overflowed midway: no digit right there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orig_lost: Option<bool>,
    /// Where `nonfinite_ok` fails: how the places differ, counted (for the verdict's line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonfinite_places: Option<String>,
    #[serde(default)]
    pub orig_l2: Option<f64>,
    #[serde(default)]
    pub orig_max: Option<f64>,
    #[serde(default)]
    pub cand_l2: Option<f64>,
    #[serde(default)]
    pub cand_max: Option<f64>,
    /// `max(|y - o| / (atol + rtol |o|))` for a fixed tolerance class.
    #[serde(default)]
    pub fixed_ratio: Option<f64>,
    /// "float64", or "original" where fn cannot run in float64.
    #[serde(default)]
    pub reference: Option<String>,
    /// The case's `sensitivity`, where it was measured (the worker does not send it).
    #[serde(default)]
    pub sensitivity: Option<f64>,
    /// The case's `spread` (relative L2, max), where it was measured (the worker does not send it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<(f64, f64)>,
}

/// The figures of one case.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SeedFigures {
    pub seed: u64,
    #[serde(default)]
    pub variant: Variant,
    pub outputs: Vec<OutputFigures>,
    /// Where the candidate's call left fn's array arguments otherwise than fn's call does
    /// (one fn updates in place not so updated, or one fn leaves alone changed): why.
    #[serde(default)]
    pub arguments: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct VerifyReply {
    pub seeds: Vec<SeedFigures>,
    /// Seconds the worker has spent on this size's float64 references so far.
    #[serde(default)]
    pub reference_seconds: f64,
}

impl Request for Verify {
    const COMMAND: Command = Command::Verify;
    type Reply = VerifyReply;
}

/// `time`: `rounds` interleaved samples of each program, `iters[p]` queued calls each.
#[derive(Debug, Serialize)]
pub struct Time {
    pub programs: Vec<ProgramId>,
    pub size: Size,
    pub seed: u64,
    pub iters: BTreeMap<ProgramId, u64>,
    pub rounds: u64,
}

/// Seconds per call, one entry per sample, per program.
#[derive(Debug, Deserialize)]
pub struct TimeReply {
    pub samples: BTreeMap<ProgramId, Vec<f64>>,
}

impl Request for Time {
    const COMMAND: Command = Command::Time;
    type Reply = TimeReply;
}

/// `calibrate`: the device's rates for the cost model and the roofline.
#[derive(Debug, Serialize)]
pub struct Calibrate {}

#[derive(Clone, Copy, Debug, Deserialize)]
pub struct Calibration {
    /// Copy bandwidth: bytes read and written per second.
    pub bytes_per_s: f64,
    /// float32 matmul rate.
    pub flops_per_s: f64,
    /// The cost of one small primitive.
    pub launch_s: f64,
    /// The fixed time of one kernel beside its bytes.
    #[serde(default)]
    pub fixed_s: f64,
    /// Whether float32 matmuls round to TF32 (their error against float64 far above float32's).
    #[serde(default)]
    pub matmul_tf32: bool,
}

impl Request for Calibrate {
    const COMMAND: Command = Command::Calibrate;
    type Reply = Calibration;
}

/// `kernel_launches`: the generated-kernel launches one call of a candidate makes.
#[derive(Debug, Serialize)]
pub struct KernelLaunches {
    pub program: ProgramId,
    pub size: Size,
}

/// An array's shape and dtype (MLX's dtype name).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ArrayType {
    pub shape: Vec<i64>,
    pub dtype: String,
}

/// One launch: which kernel of the module, over which shape, on which inputs.
#[derive(Clone, Debug, Deserialize)]
pub struct Launch {
    pub kernel: usize,
    pub shape: Vec<i64>,
    pub inputs: Vec<ArrayType>,
}

#[derive(Debug, Deserialize)]
pub struct KernelLaunchesReply {
    pub launches: Vec<Launch>,
}

impl Request for KernelLaunches {
    const COMMAND: Command = Command::KernelLaunches;
    type Reply = KernelLaunchesReply;
}

/// `tune`: seconds per call of one kernel under each launch configuration, in order,
/// starting none after `seconds` (those untried are `None`).
#[derive(Debug, Serialize)]
pub struct Tune<C: Serialize> {
    pub program: ProgramId,
    pub kernel: usize,
    pub shape: Vec<i64>,
    pub inputs: Vec<ArrayType>,
    pub configs: Vec<C>,
    pub seconds: f64,
}

/// `None` where a configuration failed or was not tried; the first `tried` were tried.
#[derive(Debug, Deserialize)]
pub struct TuneReply {
    pub seconds: Vec<Option<f64>>,
    pub tried: usize,
}

impl<C: Serialize> Request for Tune<C> {
    const COMMAND: Command = Command::Tune;
    type Reply = TuneReply;
}

/// `phew`: phew's rewrite of `fn`, written to `path`, where phew is importable.
#[derive(Debug, Serialize)]
pub struct Phew {
    pub path: String,
}

#[derive(Debug, Deserialize)]
pub struct PhewReply {
    pub available: bool,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

impl Request for Phew {
    const COMMAND: Command = Command::Phew;
    type Reply = PhewReply;
}

/// `model_blocks`: the block kinds of an mlx-lm model's decoder layers.
#[derive(Debug, Serialize)]
pub struct ModelBlocks {
    pub model: String,
    /// Run the stock model once at these shapes first (its device kernels built and kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm: Option<WarmUp>,
}

/// The shapes the block runs will use: prompts of these lengths, decode steps at these batches.
#[derive(Debug, Serialize)]
pub struct WarmUp {
    pub prefill_tokens: Vec<usize>,
    pub decode_batches: Vec<usize>,
}

/// How a block is called: with one array; with an array, a mask and a KV cache (attention);
/// or otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallKind {
    Pure,
    Cached,
    Other,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Parameter {
    pub name: String,
    pub shape: Vec<i64>,
    pub dtype: String,
}

/// One kind of block (a class) and where it is in the model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlockKind {
    /// The class, with the module that defines it (`mlx_lm.models.qwen3.MLP`).
    pub kind: String,
    /// A hash of what decides its program besides input shapes and weights' values (its
    /// weights' names, shapes and dtypes; its plain attributes): its instances share it.
    pub signature: String,
    /// Its attribute in a layer (`mlp`).
    pub attribute: String,
    /// Every instance's path (`model.layers.0.mlp`), first first.
    pub instances: Vec<String>,
    pub call: CallKind,
    /// A hash of the source of the classes in its subtree.
    pub source_hash: String,
    /// The dtype it computes in.
    pub dtype: String,
    /// The first instance's parameters, in `tree_flatten` order.
    pub parameters: Vec<Parameter>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelBlocksReply {
    /// The path of the decoder layers (`model.layers`), and how many there are.
    pub layers: String,
    pub count: usize,
    pub hidden: Option<i64>,
    pub vocab: Option<i64>,
    pub blocks: Vec<BlockKind>,
    /// mlx-lm's version, and a hash of the model's config.json.
    pub mlx_lm: String,
    pub config_sha256: String,
    /// Seconds the warm-up took.
    #[serde(default)]
    pub warm_seconds: Option<f64>,
}

impl Request for ModelBlocks {
    const COMMAND: Command = Command::ModelBlocks;
    type Reply = ModelBlocksReply;
}

/// `model_proof`: the stock, compiled and patched model side by side.
#[derive(Debug, Serialize)]
pub struct ModelProof {
    pub model: String,
    pub patch: String,
    /// The block kinds the compiled form compiles (the patched ones and the others tried).
    pub kinds: Vec<String>,
    pub vocab: i64,
    pub prompts: usize,
    pub prompt_tokens: usize,
    pub new_tokens: usize,
    pub decode_batches: Vec<usize>,
    pub decode_steps: usize,
    pub rounds: usize,
}

/// Per form (stock, compiled, patched): greedy tokens per prompt, prefill tokens/s, and
/// decode tokens/s per batch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelProofReply {
    pub tokens: BTreeMap<String, Vec<Vec<i64>>>,
    /// At each greedy token, its logit's margin over the next best (per form, per prompt).
    #[serde(default)]
    pub margins: BTreeMap<String, Vec<Vec<f64>>>,
    pub prefill: BTreeMap<String, f64>,
    pub decode: BTreeMap<String, BTreeMap<String, f64>>,
    /// Per form and batch: microseconds the host spent building one decode step's graph.
    #[serde(default)]
    pub build_us: BTreeMap<String, BTreeMap<String, f64>>,
    /// Calls that ran each winner's module while the patched model decoded.
    #[serde(default)]
    pub calls: BTreeMap<String, u64>,
    /// Per form but stock: its logits on stock's greedy tokens against stock's.
    #[serde(default)]
    pub forced: BTreeMap<String, Forced>,
}

/// A form's logits against stock's when both read stock's greedy tokens (teacher forcing),
/// so that one near tie does not change every later token.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Forced {
    /// Relative L2 of the difference over every step's logits (none where not finite).
    pub rel_l2: Option<f64>,
    /// Steps where its greedy choice would differ from stock's.
    pub argmax_differs: usize,
    pub steps: usize,
    /// Of those, steps where its choice's logit equals stock's best (a tie of stock's logits
    /// that token order broke the other way).
    #[serde(default)]
    pub at_ties: usize,
}

impl Request for ModelProof {
    const COMMAND: Command = Command::ModelProof;
    type Reply = ModelProofReply;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_their_command_and_typed_names() {
        let v = Verify {
            program: ProgramId::Original,
            size: Size::Typical,
            cases: vec![(3, Variant::Nonfinite)],
            fixed: None,
        };
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json, serde_json::json!({"program": "original", "size": "typical", "cases": [[3, "nonfinite"]]}));
        assert_eq!(Verify::COMMAND.name(), "verify");
    }

    #[test]
    fn program_ids_round_trip_and_reserved_names_stay_reserved() {
        for p in ProgramId::RESERVED.into_iter().chain([ProgramId::Candidate("egraph+compile".into())]) {
            let s = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<ProgramId>(&s).unwrap(), p);
        }
        assert_eq!(ProgramId::parse("compiled_original"), ProgramId::CompiledOriginal);
    }

    #[test]
    fn names_match_serde() {
        for c in Command::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.name());
        }
        for z in Size::ALL {
            assert_eq!(serde_json::to_value(z).unwrap(), z.name());
            assert_eq!(Size::ALL[z.index()], z);
        }
        for v in Variant::ALL {
            assert_eq!(serde_json::to_value(v).unwrap(), v.name());
        }
    }
}
