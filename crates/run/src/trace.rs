//! Stage 1: `fn` traced at every size.

use crate::outcome::Outcome;
use crate::session::{Session, Untraceable};
use anyhow::Result;
use std::collections::BTreeMap;
use superopt_bench::Size;
use superopt_ir::Program;

/// `fn`'s program at each size, in [`Size::ALL`]'s order.
pub fn trace(session: &mut Session) -> Result<Vec<Program>> {
    Size::ALL.iter().map(|z| session.trace(*z)).collect()
}

/// Where two calls of `fn` on the same inputs differed in their last bits: a line saying so
/// (verification compares with float64 either way; a bit-identical round trip cannot be).
pub fn varies_note(varies: &BTreeMap<Size, f64>) -> Option<String> {
    let sizes: Vec<String> = varies.iter().map(|(z, v)| format!("{z} {v:.1e}")).collect();
    (!sizes.is_empty()).then(|| {
        format!(
            "fn differs in rounding between two calls on the same inputs on this device (relative L2: {}): \
             its kernels' summation order depends on more than the inputs' values",
            sizes.join(", ")
        )
    })
}

/// Why no program can be rebuilt from these traces, if none can: MLX's Python has no call for
/// a primitive they hold (RandomBits: `mx.random.bits` is not in MLX's Python API).
pub fn unbuildable(traces: &[Program]) -> Option<String> {
    let random = traces.iter().any(|p| p.nodes.iter().any(|n| n.op == superopt_ir::Op::RandomBits));
    random.then(|| {
        "fn draws random bits (RandomBits), which MLX's Python cannot call directly: no rebuilt program".into()
    })
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
