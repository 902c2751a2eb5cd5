//! Stage 1: `fn` traced at every size.

use crate::outcome::Outcome;
use crate::session::{Session, Untraceable};
use anyhow::Result;
use superopt_bench::Size;
use superopt_ir::Program;

/// `fn`'s program at each size, in [`Size::ALL`]'s order.
pub fn trace(session: &mut Session) -> Result<Vec<Program>> {
    Size::ALL.iter().map(|z| session.trace(*z)).collect()
}

/// A trace that failed: "no change" where the IR does not know a primitive or MLX cannot
/// trace `fn`; an error otherwise.
pub fn failure(e: anyhow::Error) -> Result<Outcome> {
    if let Some(superopt_trace::TraceError::Import(superopt_ir::ImportError::Unsupported(op))) = e.downcast_ref() {
        return Ok(Outcome::NoChange(format!("unsupported primitive {op} (superopt's IR does not know it yet)")));
    }
    if let Some(Untraceable(why)) = e.downcast_ref() {
        return Ok(Outcome::NoChange(why.clone()));
    }
    Err(e)
}
