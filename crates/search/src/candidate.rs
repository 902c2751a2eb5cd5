//! A candidate program: its plan, how it is compiled, which strategy made it, and the
//! rules behind it.

use crate::egraph;
use serde::{Deserialize, Serialize};
use superopt_ir::Plan;

/// How the emitted module calls the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compile {
    /// Plain eager MLX.
    Eager,
    /// The whole program wrapped in `mx.compile`.
    Whole,
    /// Each run of elementwise primitives in its own `mx.compile`d function; the rest eager.
    Islands,
}

/// Which strategy made a candidate's plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The program as traced.
    AsTraced,
    /// Dead code removed, common subexpressions shared.
    Cleanup,
    /// The e-graph search with every rule family.
    Egraph,
    /// The e-graph search without the `mx.fast` family.
    #[serde(rename = "egraph-nofast")]
    EgraphNoFast,
    /// Other candidates, each at its sizes ([`by_size`]).
    BySize,
}

impl Source {
    /// Whether the e-graph search made it (it has rewrites to explain).
    pub fn is_egraph(self) -> bool {
        matches!(self, Source::Egraph | Source::EgraphNoFast)
    }
}

#[derive(Clone, Debug)]
pub struct Candidate {
    pub source: Source,
    /// Whether regions of its plan were lowered to generated kernels.
    pub kernels: bool,
    pub plan: Plan,
    pub compile: Compile,
    /// What shaped it, one entry per rule or pass that changed something.
    pub rules: Vec<String>,
    /// Each rewrite, against the traced value it replaced (`superopt explain`).
    pub explain: Vec<String>,
    /// Whether the emitted module computes input-independent values once per input shape.
    pub hoist: bool,
    /// A candidate made of others, each running at a range of problem sizes ([`by_size`]);
    /// empty for every other candidate.
    pub parts: Vec<(SizeRange, Candidate)>,
}

/// Problem sizes by the elements of `fn`'s array inputs taken together: `(above, upto]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SizeRange {
    pub above: Option<i64>,
    pub upto: Option<i64>,
}

impl Candidate {
    /// A new candidate of `source` with no kernels, parts or hoisting.
    pub fn new(source: Source, plan: Plan, compile: Compile, rules: Vec<String>) -> Candidate {
        Candidate { source, kernels: false, plan, compile, rules, explain: vec![], hoist: false, parts: vec![] }
    }

    /// Its name in tables and in the worker, unique within a run: `as-traced`, `compile`,
    /// `cse+compile`, `egraph+islands`, `egraph+kernels`, `by-size`...
    pub fn label(&self) -> String {
        let stem = match self.source {
            Source::AsTraced => "as-traced",
            Source::Cleanup => "cse",
            Source::Egraph => "egraph",
            Source::EgraphNoFast => "egraph-nofast",
            Source::BySize => "by-size",
        };
        let base = match (self.source, self.compile) {
            (Source::BySize, _) => stem.to_string(),
            (Source::AsTraced, Compile::Eager) => stem.to_string(),
            (Source::AsTraced, Compile::Whole) => "compile".to_string(),
            (Source::AsTraced, Compile::Islands) => "compile-islands".to_string(),
            (_, Compile::Eager) => stem.to_string(),
            (_, Compile::Whole) => format!("{stem}+compile"),
            (_, Compile::Islands) => format!("{stem}+islands"),
        };
        if self.kernels {
            format!("{base}+kernels")
        } else {
            base
        }
    }
}

impl SizeRange {
    pub const ALL: SizeRange = SizeRange { above: None, upto: None };

    pub fn admits(&self, elements: i64) -> bool {
        self.above.is_none_or(|a| elements > a) && self.upto.is_none_or(|u| elements <= u)
    }

    /// "at 1000 input elements or fewer", "above 1000 and at 4000 input elements or fewer", ...
    pub fn describe(&self) -> String {
        match (self.above, self.upto) {
            (None, None) => "at every size".into(),
            (None, Some(u)) => format!("at {u} input elements or fewer"),
            (Some(a), None) => format!("above {a} input elements"),
            (Some(a), Some(u)) => format!("above {a} and at {u} input elements or fewer"),
        }
    }
}

/// One candidate that runs each of `parts` at its sizes: its plan holds their variants in
/// order (each part's guards, the size range added on emission).
pub fn by_size(parts: Vec<(SizeRange, Candidate)>) -> Candidate {
    let variants = parts.iter().flat_map(|(_, c)| c.plan.variants.iter().cloned()).collect();
    let per_size_because = parts.iter().find_map(|(_, c)| c.plan.per_size_because.clone());
    let rules = parts.iter().map(|(r, c)| format!("{} {}", c.label(), r.describe())).collect();
    let explain = parts.iter().flat_map(|(_, c)| c.explain.iter().cloned()).collect();
    let plan = Plan { variants, per_size_because };
    Candidate { explain, parts, ..Candidate::new(Source::BySize, plan, Compile::Eager, rules) }
}

/// The program exactly as traced, uncompiled: the round-trip check, and a contender
/// in its own right, since MLX's export already merges equal subexpressions.
pub fn as_traced(traced: &Plan) -> Candidate {
    let rules = vec!["rebuilt from the trace (MLX's export merges equal subexpressions)".into()];
    Candidate::new(Source::AsTraced, traced.clone(), Compile::Eager, rules)
}

/// The modelled seconds of a candidate over its plan's variants: it orders
/// verification (the likeliest winners first); timing decides.
pub fn modelled_cost(c: &Candidate, dev: &egraph::cost::Device, deadline: std::time::Instant) -> f64 {
    let mode = cost_mode(c.compile);
    c.plan.variants.iter().map(|(guard, p)| egraph::program_cost(p, guard, dev, mode, deadline)).sum()
}

/// How the cost model runs a program compiled so.
pub fn cost_mode(c: Compile) -> egraph::cost::Mode {
    match c {
        Compile::Eager => egraph::cost::Mode::Eager,
        Compile::Whole | Compile::Islands => egraph::cost::Mode::Compiled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_source_compile_and_kernels() {
        let plan = Plan { variants: vec![], per_size_because: None };
        let c = |source, compile| Candidate::new(source, plan.clone(), compile, vec![]);
        assert_eq!(c(Source::AsTraced, Compile::Eager).label(), "as-traced");
        assert_eq!(c(Source::AsTraced, Compile::Whole).label(), "compile");
        assert_eq!(c(Source::AsTraced, Compile::Islands).label(), "compile-islands");
        assert_eq!(c(Source::Cleanup, Compile::Whole).label(), "cse+compile");
        assert_eq!(c(Source::EgraphNoFast, Compile::Islands).label(), "egraph-nofast+islands");
        assert_eq!(Candidate { kernels: true, ..c(Source::Egraph, Compile::Eager) }.label(), "egraph+kernels");
        assert_eq!(c(Source::BySize, Compile::Eager).label(), "by-size");
        assert_eq!(serde_json::to_value(Source::EgraphNoFast).unwrap(), "egraph-nofast");
    }
}
