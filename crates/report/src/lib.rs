//! What the user reads: the result table, the JSON repro capsule, the diff, the roofline,
//! and the suite's table and chart.

mod capsule;
pub mod roofline;
pub mod suite;
mod table;

pub use capsule::{CandidateReport, Capsule, References, SizeReport, Stage};
pub use table::{format_seconds, table};

/// A unified diff from the harness's source to the emitted module.
pub fn diff(original: &str, optimized: &str, original_name: &str, optimized_name: &str) -> String {
    similar::TextDiff::from_lines(original, optimized)
        .unified_diff()
        .context_radius(3)
        .header(original_name, optimized_name)
        .to_string()
}
