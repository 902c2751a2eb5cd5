//! The first strategies: `mx.compile`, and dead-code plus common-subexpression cleanup.

use crate::{Candidate, Compile, Strategy};
use superopt_ir::{passes, Plan};

/// The traced program wrapped whole in `mx.compile`.
pub struct Compiled;

impl Strategy for Compiled {
    fn name(&self) -> &'static str {
        "compile"
    }

    fn propose(&self, traced: &Plan) -> Vec<Candidate> {
        vec![Candidate { name: "compile".into(), plan: traced.clone(), compile: Compile::Whole, rules: vec!["mx.compile(whole function)".into()], explain: vec![], hoist: false }]
    }
}

/// Dead code removed and common subexpressions shared, eager and compiled.
pub struct Cleanup;

impl Strategy for Cleanup {
    fn name(&self) -> &'static str {
        "cleanup"
    }

    fn propose(&self, traced: &Plan) -> Vec<Candidate> {
        let mut plan = traced.clone();
        let merged = plan.map(passes::common_subexpressions);
        let dead = plan.map(passes::dead_code);
        if merged + dead == 0 {
            return vec![];
        }
        let mut rules = vec![];
        if merged > 0 {
            rules.push(format!("cse: {merged} duplicate nodes/constants shared"));
        }
        if dead > 0 {
            rules.push(format!("dce: {dead} dead nodes dropped"));
        }
        let compiled_rules = [rules.clone(), vec!["mx.compile(whole function)".into()]].concat();
        vec![
            Candidate { name: "cse".into(), plan: plan.clone(), compile: Compile::Eager, rules, explain: vec![], hoist: false },
            Candidate { name: "cse+compile".into(), plan, compile: Compile::Whole, rules: compiled_rules, explain: vec![], hoist: false },
        ]
    }
}
