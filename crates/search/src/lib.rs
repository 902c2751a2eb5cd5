//! Candidate programs.
//!
//! A [`Strategy`] looks at the traced plan and proposes [`Candidate`]s. Every
//! candidate is emitted, verified and timed by the pipeline; none is trusted.
//! The e-graph search plugs in here as one more strategy.

pub mod egraph;
pub mod lowering;
pub mod rules;
pub mod saturation;
pub mod strategies;

use serde::Serialize;
use superopt_ir::Plan;

/// How the emitted module calls the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compile {
    /// Plain eager MLX.
    Eager,
    /// The whole program wrapped in `mx.compile`.
    Whole,
    /// Each run of elementwise primitives in its own `mx.compile`d function; the rest eager.
    Islands,
}

#[derive(Clone, Debug)]
pub struct Candidate {
    /// Short and unique within a run, e.g. `cse+compile`.
    pub name: String,
    pub plan: Plan,
    pub compile: Compile,
    /// What shaped it, one entry per rule or pass that changed something.
    pub rules: Vec<String>,
    /// Each rewrite, against the traced value it replaced (`superopt explain`).
    pub explain: Vec<String>,
    /// Whether the emitted module computes input-independent values once per input shape.
    pub hoist: bool,
}

pub trait Strategy {
    fn name(&self) -> &'static str;
    /// Candidates derived from `traced`; none where the strategy has nothing to offer.
    fn propose(&self, traced: &Plan) -> Vec<Candidate>;
}

/// The strategies a run uses, in order; the e-graph search gets `search_time` in all.
pub fn default_strategies(search_time: std::time::Duration, device: egraph::cost::Device) -> Vec<Box<dyn Strategy>> {
    vec![Box::new(strategies::Compiled), Box::new(strategies::Cleanup), Box::new(saturation::Saturation { time: search_time, device })]
}

/// The program exactly as traced, uncompiled: the round-trip check, and a contender
/// in its own right, since MLX's export already merges equal subexpressions.
pub fn as_traced(traced: &Plan) -> Candidate {
    let rules = vec!["rebuilt from the trace (MLX's export merges equal subexpressions)".into()];
    Candidate { name: "as-traced".into(), plan: traced.clone(), compile: Compile::Eager, rules, explain: vec![], hoist: false }
}

/// The modelled seconds of a candidate over its plan's variants: it orders
/// verification (the likeliest winners first); timing decides.
pub fn modelled_cost(c: &Candidate, dev: &egraph::cost::Device) -> f64 {
    let mode = match c.compile {
        Compile::Eager => egraph::cost::Mode::Eager,
        Compile::Whole | Compile::Islands => egraph::cost::Mode::Compiled,
    };
    c.plan.variants.iter().map(|(guard, p)| egraph::program_cost(p, guard, dev, mode)).sum()
}
