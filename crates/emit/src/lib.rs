//! Emission: an IR plan -> a readable MLX Python module defining `optimized`.
//!
//! The module has `fn`'s signature. Each variant of the plan becomes a function
//! `_program_k` guarded by `_fits_k`; inputs no guard admits go to the original
//! `fn`, loaded from the harness file. Scalars are written inline; array
//! constants are loaded from a safetensors file beside the module.

mod module;
mod ops;

pub use module::{emit, kernel_calls, Emitted, ModuleInfo};

use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum EmitError {
    #[error("cannot emit primitive {op}: {why}")]
    Op { op: String, why: String },
}
