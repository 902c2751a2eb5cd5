//! The Python worker: a separate process that runs MLX for superopt.
//!
//! The worker's source is embedded in the binary and written to the user's cache
//! directory on first use, with `superopt_model.py` (which it imports for model
//! commands). Requests and replies are JSON lines. A worker that crashes or outlives
//! a request's timeout is killed and restarted; the request's program is dropped, the
//! harness and the other programs are loaded again. The requests and replies are
//! typed in [`protocol`].

mod process;
pub mod protocol;
mod python;

pub use process::{kill, Worker, WorkerError};
pub use python::{find_python, PythonChoice};

/// The worker's Python source.
pub const WORKER_SOURCE: &str = include_str!("../python/superopt_worker.py");

/// The worker's commands for `superopt model`, written beside it (`superopt_model.py`).
pub const MODEL_SOURCE: &str = include_str!("../python/superopt_model.py");
