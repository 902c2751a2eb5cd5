//! Candidate programs.
//!
//! A [`Strategy`] looks at the traced plan and proposes [`Candidate`]s. Every
//! candidate is emitted, verified and timed by the pipeline; none is trusted.
//! The e-graph search plugs in here as one more strategy.

pub mod candidate;
pub mod egraph;
pub mod rules;
pub mod saturate;
pub mod saturation;
pub mod strategies;
pub mod strategy;

pub use candidate::{as_traced, by_size, cost_mode, modelled_cost, Candidate, Compile, SizeRange, Source};
pub use strategy::Strategy;

/// The strategies a run uses, in order; the e-graph search gets `search_time` in all.
pub fn default_strategies(search_time: std::time::Duration, device: egraph::cost::Device) -> Vec<Box<dyn Strategy>> {
    vec![
        Box::new(strategies::Compiled),
        Box::new(strategies::Cleanup),
        Box::new(saturation::Saturation { time: search_time, device }),
    ]
}
