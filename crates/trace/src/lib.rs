//! Tracing: runs the harness's `fn` through `mx.export_function` at every size,
//! imports each trace into the IR, and aligns the traces into one program.

pub mod align;

use serde_json::json;
use std::time::Duration;
use superopt_ir::{import_trace, ImportError, Program, TraceEvents};
use superopt_worker::{Worker, WorkerError};
use thiserror::Error;

pub use align::align;

#[derive(Debug, Error)]
pub enum TraceError {
    #[error(transparent)]
    Worker(#[from] WorkerError),
    #[error("{0}")]
    Import(#[from] ImportError),
}

/// The program `fn` runs at one size, as traced with `seed`'s inputs.
pub fn trace_size(worker: &mut Worker, size: &str, seed: u64, timeout: Duration) -> Result<Program, TraceError> {
    trace_request(worker, json!({"size": size, "seed": seed}), timeout)
}

/// The program a loaded candidate module runs at one size.
pub fn trace_program(worker: &mut Worker, program: &str, size: &str, timeout: Duration) -> Result<Program, TraceError> {
    trace_request(worker, json!({"size": size, "seed": 0, "program": program}), timeout)
}

fn trace_request(worker: &mut Worker, req: serde_json::Value, timeout: Duration) -> Result<Program, TraceError> {
    let reply = worker.cmd("trace", req, timeout)?;
    let events: TraceEvents =
        serde_json::from_value(reply).map_err(|e| ImportError::Malformed(format!("the worker's trace does not parse: {e}")))?;
    Ok(import_trace(&events)?)
}
