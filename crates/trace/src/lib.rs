//! Tracing: runs the harness's `fn` through `mx.export_function` at every size,
//! imports each trace into the IR, and aligns the traces into one program.

pub mod align;

use std::time::Duration;
use superopt_ir::{import_trace, ImportError, Program, TraceEvents};
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

/// `fn`'s program at one size, and how far two of its calls there differ in rounding.
#[derive(Debug)]
pub struct Traced {
    pub program: Program,
    /// Relative L2 between two calls on the same inputs, where not bit-identical (see
    /// [`superopt_ir::TraceEvents::varies`]).
    pub varies: Option<f64>,
}

/// The program `fn` runs at one size, as traced with `seed`'s inputs.
pub fn trace_size(worker: &mut Worker, size: Size, seed: u64, timeout: Duration) -> Result<Traced, TraceError> {
    let events = events(worker, &Trace { size, seed, program: None }, timeout)?;
    Ok(Traced { program: import_trace(&events)?, varies: events.varies })
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
    Ok(import_trace(&events(worker, req, timeout)?)?)
}

fn events(worker: &mut Worker, req: &Trace, timeout: Duration) -> Result<TraceEvents, TraceError> {
    worker.call(req, timeout).map_err(|e| match e {
        WorkerError::BadReply { why, .. } => {
            TraceError::Import(ImportError::Malformed(format!("the worker's trace does not parse: {why}")))
        }
        e => TraceError::Worker(e),
    })
}
