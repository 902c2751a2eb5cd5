//! Stage 2: candidates. Every strategy's proposals for the traced plan, then the kernel
//! version of the most rewritten eager one where the device runs generated kernels, eager
//! (every region a kernel) and compiled (elementwise chains left to `mx.compile`).

use crate::ledger::Run;
use std::time::{Duration, Instant};
use superopt_kernel::lower::Regions;
use superopt_kernel::Target;
use superopt_search::egraph::cost::Device;
use superopt_search::strategies::{compile_rule, with_compile_rule};
use superopt_search::{as_traced, default_strategies, Candidate, Compile, Source};
use superopt_worker::protocol::Backend;

/// The traced program first, then what every strategy proposes for it.
pub fn proposals(plan: &superopt_ir::Plan, search_time: Duration, device: Device) -> Vec<Candidate> {
    let mut candidates = vec![as_traced(plan)];
    for strategy in default_strategies(search_time, device) {
        candidates.extend(strategy.propose(plan));
    }
    candidates
}

/// Proposes on the run's device (measured as the run started), and adds every candidate
/// to the ledger.
pub fn propose(run: &mut Run) {
    run.say("searching");
    let mut candidates = proposals(&run.plan, run.budget.search_time(), run.device);
    match kernel_target(run.session.backend()) {
        Ok(target) => {
            // Lowering gets half the search's time; past it, no kernel candidate.
            let deadline = Instant::now() + run.budget.search_time() / 2;
            match kernel_candidates(&candidates, target, deadline) {
                Some(kernels) => candidates.extend(kernels),
                None => run.notes.push(LOWERING_LATE.into()),
            }
        }
        Err(why) => run.notes.push(why),
    }
    let why = |j: usize| format!("the same program as {}: not verified or timed twice", candidates[j].label());
    let twinned: Vec<Option<String>> = twins(&candidates).into_iter().map(|t| t.map(why)).collect();
    for (c, twin) in candidates.into_iter().zip(twinned) {
        let id = run.add(c);
        if let Some(why) = twin {
            run.entry_mut(id).drop_with(why);
        }
    }
}

/// For each candidate, the first one before it that emits the same module (the same plan,
/// compiled and hoisted alike), if any: strategies reach one program by several roads
/// (an e-graph's compiled extraction without its fast rules is its no-fast twin's), and a
/// second verification of it costs what the first did.
fn twins(candidates: &[Candidate]) -> Vec<Option<usize>> {
    let same = |a: &Candidate, b: &Candidate| {
        a.plan == b.plan
            && a.compile == b.compile
            && a.kernels == b.kernels
            && a.hoist == b.hoist
            && a.parts.is_empty()
            && b.parts.is_empty()
    };
    (0..candidates.len()).map(|k| (0..k).find(|&j| same(&candidates[j], &candidates[k]))).collect()
}

/// The kernel candidates of the most rewritten eager candidate: every region lowered,
/// eager; and, wrapped whole in `mx.compile` (at decode sizes the launches and the Python
/// between them, not the bytes, take the time), its quantized products, solves and regions
/// with a reduction, where it has any. `None` where the first lowering outlasted `deadline`.
fn kernel_candidates(candidates: &[Candidate], target: Target, deadline: Instant) -> Option<Vec<Candidate>> {
    let Some((source, all)) = lowered_source(candidates, target, Some(deadline))? else { return Some(vec![]) };
    // Late, it leaves the eager candidate alone.
    let fused = lower_candidate(source, target, Some(deadline), Regions::Reductions).flatten();
    Some(fused.iter().map(compiled).chain([all]).collect())
}

fn compiled(k: &Candidate) -> Candidate {
    Candidate { compile: Compile::Whole, rules: with_compile_rule(k.rules.clone(), Compile::Whole), ..k.clone() }
}

/// Which kernels the device runs, or why it runs none. `SUPEROPT_KERNELS=mlx` lowers to
/// plain MLX operations: the kernels' meaning, checked by verification on any device
/// (the tests' way to verify lowering on the CPU).
pub fn kernel_target(backend: Backend) -> Result<Target, String> {
    if let Some(t) = std::env::var("SUPEROPT_KERNELS").ok().and_then(|t| Target::parse(&t)) {
        return Ok(t);
    }
    backend_target(backend).ok_or_else(|| {
        "custom-kernel candidates skipped: MLX's cpu backend runs no custom kernels \
         (mx.fast.cuda_kernel / metal_kernel need a GPU)"
            .into()
    })
}

/// The custom-kernel API of an MLX backend; none for the CPU.
pub fn backend_target(backend: Backend) -> Option<Target> {
    match backend {
        Backend::Cuda => Some(Target::Cuda),
        Backend::Metal => Some(Target::Metal),
        Backend::Cpu => None,
    }
}

/// The kernel version of the most rewritten eager candidate (the e-graph's, else the
/// cleaned-up or traced program). One: each kernel is compiled and tuned on the device,
/// which costs seconds.
pub fn lowered_for(candidates: &[Candidate], target: Target) -> Option<Candidate> {
    lowered_until(candidates, target, None).flatten()
}

const LOWERING_LATE: &str = "custom-kernel candidates skipped: lowering the program to kernels outlasted \
                             its share of the search time";

/// [`lowered_for`] until `deadline`: `None` where lowering outlasted it.
pub fn lowered_until(candidates: &[Candidate], target: Target, deadline: Option<Instant>) -> Option<Option<Candidate>> {
    Some(lowered_source(candidates, target, deadline)?.map(|(_, lowered)| lowered))
}

/// The most rewritten eager candidate (the e-graph's, else the cleaned-up or traced
/// program) that has something to lower, and it with every region lowered; `None` where
/// lowering outlasted `deadline`.
fn lowered_source(
    candidates: &[Candidate],
    target: Target,
    deadline: Option<Instant>,
) -> Option<Option<(&Candidate, Candidate)>> {
    let eager = |s: Source| candidates.iter().find(|c| c.source == s && c.compile == Compile::Eager && !c.kernels);
    for c in [Source::Egraph, Source::Cleanup, Source::AsTraced].into_iter().filter_map(eager) {
        if let Some(lowered) = lower_candidate(c, target, deadline, Regions::All)? {
            return Some(Some((c, lowered)));
        }
    }
    Some(None)
}

/// `c` with its kernel-friendly regions lowered for `target`; `Some(None)` where nothing
/// lowers, `None` where lowering outlasted `deadline`.
pub fn lower_candidate(
    c: &Candidate,
    target: Target,
    deadline: Option<Instant>,
    regions: Regions,
) -> Option<Option<Candidate>> {
    let mut plan = c.plan.clone();
    let mut lines = vec![];
    for (_, p) in plan.variants.iter_mut() {
        let probe: superopt_kernel::solve::lower::Probe = &superopt_verify::field::solve_form;
        lines.extend(superopt_kernel::lower::lower_with(p, target, deadline, Some(probe), regions)?);
    }
    if lines.is_empty() {
        return Some(None);
    }
    lines.sort();
    lines.dedup();
    let compiled = compile_rule(c.compile);
    let mut rules: Vec<String> = c.rules.iter().filter(|r| compiled.is_none_or(|l| l != r.as_str())).cloned().collect();
    rules.extend(lines);
    Some(Some(Candidate { kernels: true, plan, compile: Compile::Eager, rules, parts: vec![], ..c.clone() }))
}

/// Whether `c` calls generated GPU row kernels or quantized products, whose launches the
/// device must tune (solves and the plain-MLX form have no launch space).
pub fn tunable(c: &Candidate) -> bool {
    let has_space = |k: &superopt_kernel::Call| {
        matches!(k.body, superopt_kernel::Body::Rows(_) | superopt_kernel::Body::Quantized(_))
    };
    superopt_emit::kernel_calls(&c.plan).iter().any(|k| k.target != Target::Mlx && has_space(k))
}

/// The Metal source of a candidate's kernels (from the same kernel IR as its CUDA ones).
pub fn metal_source(c: &Candidate) -> Option<String> {
    let calls = superopt_emit::kernel_calls(&c.plan);
    if calls.is_empty() || calls.iter().all(|k| k.target == Target::Metal) {
        return None;
    }
    let each = calls.iter().map(|k| format!("// {}\n{}", k.name(), k.source(Target::Metal)));
    Some(each.collect::<Vec<_>>().join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use superopt_ir::Plan;

    #[test]
    fn a_candidate_emitting_an_earlier_ones_module_is_its_twin() {
        let plan = Plan { variants: vec![], per_size_because: None };
        let traced = superopt_search::as_traced(&plan);
        let same = Candidate { source: Source::Egraph, rules: vec!["another road".into()], ..traced.clone() };
        let compiled = Candidate { compile: Compile::Whole, ..traced.clone() };
        let hoisted = Candidate { hoist: true, ..traced.clone() };
        let twins = twins(&[traced, same, compiled.clone(), hoisted, compiled]);
        assert_eq!(twins, [None, Some(0), None, None, Some(2)]);
    }
}
