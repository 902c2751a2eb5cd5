//! The first strategies: `mx.compile`, and dead-code, common-subexpression and
//! loop-iteration cleanup.

use crate::candidate::{Candidate, Compile, Source};
use crate::strategy::Strategy;
use superopt_ir::{passes, Plan};

/// The rule line that says how a candidate is compiled; `None` for eager.
pub fn compile_rule(c: Compile) -> Option<&'static str> {
    match c {
        Compile::Eager => None,
        Compile::Whole => Some("mx.compile(whole function)"),
        Compile::Islands => Some("mx.compile(each elementwise island)"),
    }
}

/// `rules` and, last, the line for `c`.
pub fn with_compile_rule(mut rules: Vec<String>, c: Compile) -> Vec<String> {
    rules.extend(compile_rule(c).map(String::from));
    rules
}

/// The traced program wrapped whole in `mx.compile`, and with only its elementwise
/// islands compiled (where that differs).
pub struct Compiled;

impl Strategy for Compiled {
    fn name(&self) -> &'static str {
        "compile"
    }

    fn propose(&self, traced: &Plan) -> Vec<Candidate> {
        let mut out = vec![Candidate::new(
            Source::AsTraced,
            traced.clone(),
            Compile::Whole,
            with_compile_rule(vec![], Compile::Whole),
        )];
        if traced.variants.iter().any(|(_, p)| passes::has_islands(p)) {
            let rules = with_compile_rule(vec![], Compile::Islands);
            out.push(Candidate::new(Source::AsTraced, traced.clone(), Compile::Islands, rules));
        }
        out
    }
}

/// The rule line of `n` batches of loop iterations ([`superopt_ir::batch`]), if any.
pub fn batch_rule(n: usize) -> Option<String> {
    (n > 0).then(|| format!("batch: {n} primitives of unrolled loops applied once to every iteration's slices"))
}

/// `plan` with its loop iterations batched, and how many batches that made.
pub fn batched(plan: &Plan) -> (Plan, usize) {
    // Shared first: two spellings of one slice (`k[:, :, i]` twice) are one lane.
    let mut batch = plan.clone();
    batch.map(passes::compose_slices);
    batch.map(passes::common_subexpressions);
    match superopt_ir::batch::batch_plan(&mut batch) {
        0 => (plan.clone(), 0),
        n => (batch, n),
    }
}

/// Dead code removed, common subexpressions shared and loop iterations batched, eager and
/// compiled.
pub struct Cleanup;

impl Strategy for Cleanup {
    fn name(&self) -> &'static str {
        "cleanup"
    }

    fn propose(&self, traced: &Plan) -> Vec<Candidate> {
        let mut plan = traced.clone();
        plan.map(passes::compose_slices);
        let merged = plan.map(passes::common_subexpressions);
        let dead = plan.map(passes::dead_code);
        let batched = superopt_ir::batch::batch_plan(&mut plan);
        if merged + dead + batched == 0 {
            return vec![];
        }
        let mut rules: Vec<String> = batch_rule(batched).into_iter().collect();
        if merged > 0 {
            rules.push(format!("cse: {merged} duplicate nodes/constants shared"));
        }
        if dead > 0 {
            rules.push(format!("dce: {dead} dead nodes dropped"));
        }
        let compiled_rules = with_compile_rule(rules.clone(), Compile::Whole);
        vec![
            Candidate::new(Source::Cleanup, plan.clone(), Compile::Eager, rules),
            Candidate::new(Source::Cleanup, plan, Compile::Whole, compiled_rules),
        ]
    }
}
