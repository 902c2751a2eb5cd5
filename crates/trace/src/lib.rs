//! Tracing: runs the harness's `fn` through `mx.export_function` at every size,
//! imports each trace into the IR, and aligns the traces into one program.

pub mod align;

use std::time::Duration;
use superopt_ir::{import_trace, ImportError, Program};
use superopt_worker::protocol::{ProgramId, Size, Trace};
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
pub fn trace_size(worker: &mut Worker, size: Size, seed: u64, timeout: Duration) -> Result<Program, TraceError> {
    trace_request(worker, &Trace { size, seed, program: None }, timeout)
}

/// The program a loaded candidate module runs at one size.
pub fn trace_program(
    worker: &mut Worker,
    program: ProgramId,
    size: Size,
    timeout: Duration,
) -> Result<Program, TraceError> {
    trace_request(worker, &Trace { size, seed: 0, program: Some(program) }, timeout)
}

fn trace_request(worker: &mut Worker, req: &Trace, timeout: Duration) -> Result<Program, TraceError> {
    let events = worker.call(req, timeout).map_err(|e| match e {
        WorkerError::BadReply { why, .. } => {
            TraceError::Import(ImportError::Malformed(format!("the worker's trace does not parse: {why}")))
        }
        e => TraceError::Worker(e),
    })?;
    Ok(import_trace(&events)?)
}
