//! The command line.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "superopt",
    version,
    about = "Find a faster MLX program that computes the same thing, verify it, and hand it back."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Optimize the harness's `fn` and print the result table.
    Run(RunArgs),
    /// Time the original `fn` at the three sizes.
    Bench(CommonArgs),
    /// Show the traced IR.
    Trace(TraceArgs),
    /// Check a hand-written rewrite against the original.
    Verify(VerifyArgs),
    /// Optimize like `run`, then print each rewrite that shaped the winner (nothing is written).
    Explain(RunArgs),
    /// Run every harness in a folder against the original and mx.compile; print a table.
    Suite(SuiteArgs),
    /// Print the GPU kernels superopt generates for the harness (CUDA, Metal, or as plain MLX).
    Kernels(KernelsArgs),
    /// Optimize an mlx-lm model's blocks, write a patch, and prove it end to end.
    Model(ModelArgs),
    /// Find slow MLX patterns in Python files without running them; exit 1 when any is found.
    Lint(LintArgs),
}

#[derive(Args)]
pub struct LintArgs {
    /// Python files, or folders to search for them.
    #[arg(required_unless_present = "rules")]
    pub paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = LintFormat::Text)]
    pub format: LintFormat,
    /// Print every rule (code, name, what it finds, why it is slow, the fix) and exit.
    #[arg(long)]
    pub rules: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LintFormat {
    Text,
    Json,
}

#[derive(Args)]
pub struct ModelArgs {
    /// An mlx-lm model folder (config.json and safetensors; no tokenizer needed).
    pub dir: PathBuf,
    /// Write the patch here (`patch(model)`), its verified modules in a folder beside it
    /// [default: superopt_patch.py, which must not exist yet].
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Write the JSON capsule here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw the forms' tokens/s over stock as a bar chart (SVG) here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Prompt length: prefill shapes are a quarter, half and all of it.
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Decode batches (at most three; fewer are extended by fourfold steps).
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub decode_batch: Vec<usize>,
    /// Seconds for each block kind's run at each shape class.
    #[arg(long, default_value_t = 60)]
    pub time_budget: u64,
    /// Prompts whose greedy tokens must be stock's.
    #[arg(long, default_value_t = 3)]
    pub prompts: usize,
    /// Greedy tokens per prompt.
    #[arg(long, default_value_t = 32)]
    pub new_tokens: usize,
    /// Timed decode steps per figure.
    #[arg(long, default_value_t = 64)]
    pub decode_steps: usize,
    /// Rounds over the forms (each figure the best of them).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Seconds one worker request may take before the worker is restarted.
    #[arg(long, default_value_t = 600)]
    pub request_timeout: u64,
    #[arg(long)]
    pub python: Option<PathBuf>,
}

#[derive(Args)]
pub struct KernelsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// cuda, metal, or mlx (the kernels as plain MLX operations: their meaning, runs anywhere).
    #[arg(long, default_value = "cuda")]
    pub target: String,
    /// Also write the module that calls them (launch parameters untuned).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Args)]
pub struct SuiteArgs {
    /// A folder of harnesses (every *.py in it).
    pub dir: PathBuf,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw the speedups as a bar chart (SVG) here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Sizes small enough for a 2-core CPU (sets SUPEROPT_SIZES=cpu for the harnesses).
    #[arg(long)]
    pub cpu_sizes: bool,
    /// Seconds for each harness's run.
    #[arg(long, default_value_t = 60)]
    pub time_budget: u64,
    /// Keep the rows already in the --json file and run only the harnesses it lacks
    /// (a long suite can then go in several sittings).
    #[arg(long, requires = "json")]
    pub resume: bool,
    /// Stop starting new harnesses after this many seconds (with --resume, go on later).
    #[arg(long)]
    pub stop_after: Option<u64>,
    /// Run each harness in its own process and end it after this many seconds; its row
    /// then says "timed out".
    #[arg(long)]
    pub harness_limit: Option<u64>,
    /// Also write each harness's run capsule (every candidate's verdicts, timings and
    /// launches) here, as WORKLOAD.json.
    #[arg(long)]
    pub capsules: Option<PathBuf>,
    /// Only the harness of this name (how --harness-limit runs each one).
    #[arg(long, hide = true)]
    pub only: Option<String>,
    #[arg(long)]
    pub python: Option<PathBuf>,
}

#[derive(Args, Clone)]
pub struct CommonArgs {
    /// A Python file defining `fn(*args)` and `input_factory(size_label, seed)`.
    pub harness: PathBuf,
    /// The Python that runs MLX (else SUPEROPT_PYTHON, else python3, else a managed virtualenv).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Seconds one worker request may take before the worker is restarted.
    #[arg(long, default_value_t = 120)]
    pub request_timeout: u64,
}

impl CommonArgs {
    /// The worker session these flags ask for.
    pub fn session(&self) -> superopt_run::SessionConfig {
        superopt_run::SessionConfig {
            harness: self.harness.clone(),
            python: self.python.clone(),
            request_timeout: std::time::Duration::from_secs(self.request_timeout),
        }
    }
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Write the optimized module here (only when a verified win exists).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Write a JSON repro capsule here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Print the diff from the harness to the optimized module.
    #[arg(long)]
    pub diff: bool,
    /// Which sizes must be faster.
    #[arg(long, value_enum, default_value_t = ObjectiveArg::All)]
    pub objective: ObjectiveArg,
    /// relative (default), fp32, or the lossy fp16 / bf16 / quantized classes.
    #[arg(long, default_value = "relative")]
    pub tolerance: String,
    /// Seconds for search, verification and timing (loading and tracing fn are not counted);
    /// timing stops early to stay inside it.
    #[arg(long, default_value_t = 110)]
    pub time_budget: u64,
    /// Seeds per size for verification.
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ObjectiveArg {
    All,
    Typical,
    Geomean,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Dot,
}

#[derive(Args)]
pub struct TraceArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// small, typical, large, or all (aligned into one program where possible).
    #[arg(long, default_value = "typical")]
    pub size: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Python modules, each defining `optimized` (or `fn`) with the harness `fn`'s signature.
    #[arg(required = true)]
    pub candidates: Vec<PathBuf>,
    #[arg(long, default_value = "relative")]
    pub tolerance: String,
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// Prints every case's error figures (each seed and edge input, each output).
    #[arg(long)]
    pub cases: bool,
}
