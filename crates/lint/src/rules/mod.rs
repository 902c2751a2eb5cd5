//! The rules' code, by family. Rules over terms (one expression, its names inlined) are listed in
//! [`TERM_RULES`]; rules over loops in [`rows`] and over calls in [`calls`]; rules over kernel
//! sources in [`kernel`].

pub mod attention;
pub mod calls;
pub mod fast;
pub mod kernel;
pub mod layout;
pub mod matmul;
pub mod rows;
pub mod table;

use crate::registry::Rule;
use crate::term::T;

/// Where an expression runs.
pub struct Ctx {
    /// In a function that runs on every call (not `__init__`, not a cached helper, not the module).
    pub runs_every_call: bool,
    /// In a function `mx.compile` wraps: its elementwise chains are fused already.
    pub compiled: bool,
}

/// A rule's match: the subterm that identifies it (one finding per key, wherever the term is used
/// again), the smallest term the match spans, and the message.
pub struct Hit {
    pub key: T,
    pub span: T,
    pub message: String,
}

impl Hit {
    /// A match that spans its key.
    pub fn new(key: &T, message: &str) -> Hit {
        Hit::spanning(key, key, message)
    }

    pub fn spanning(key: &T, span: &T, message: &str) -> Hit {
        Hit { key: key.clone(), span: span.clone(), message: message.to_string() }
    }
}

pub type TermRule = fn(&T, &Ctx) -> Option<Hit>;

/// The rules over terms. Each sees every expression of the file, its names inlined.
pub const TERM_RULES: &[(Rule, TermRule)] = &[
    (Rule::RmsNorm, fast::rms_norm),
    (Rule::LayerNorm, fast::layer_norm),
    (Rule::Softmax, fast::softmax),
    (Rule::Silu, fast::silu),
    (Rule::Gelu, fast::gelu),
    (Rule::Rope, fast::rope),
    (Rule::Attention, attention::attention),
    (Rule::RepeatKv, attention::repeat_kv),
    (Rule::PerCallTable, table::per_call_table),
    (Rule::LayoutRoundTrip, layout::round_trip),
    (Rule::MatmulOrder, matmul::order),
];
