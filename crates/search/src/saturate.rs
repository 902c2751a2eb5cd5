//! Equality saturation: a program's e-graph saturated with the rules of some families,
//! the cheapest program extracted, and each rewrite behind it.

use crate::egraph::cost::{Device, Mode};
use crate::egraph::lang::{self, Mlx, Origin};
use crate::egraph::{convert, extract, modelled};
use crate::rules::{rules, Family};
use egg::{BackoffScheduler, Id, Language, Runner, StopReason};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};
use superopt_ir::{Guard, Program};

/// Bounds on one saturation.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// For saturating.
    pub time: Duration,
    pub nodes: usize,
    pub iters: usize,
    /// When everything (converting, saturating, extracting, costing) must be done.
    pub deadline: Instant,
}

/// One rewrite in the extracted program: the traced value it replaced and what replaced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The traced value (`%12 = Multiply`) whose e-class changed.
    pub original: String,
    /// What the extraction took instead (`RMSNorm`, `%3`...).
    pub now: String,
    /// Whether that is another traced node (a merge that added none).
    pub now_traced: bool,
    /// The rules that equated the two, most specific first.
    pub rules: Vec<String>,
}

pub struct Found {
    pub program: Program,
    /// Modelled seconds, original and extracted.
    pub cost_before: f64,
    pub cost_after: f64,
    /// Rules behind the extracted program's changes, with how many places each shaped.
    pub rules: BTreeMap<String, usize>,
    /// The families of those rules.
    pub families: Vec<Family>,
    pub steps: Vec<Step>,
    /// Iterations, e-graph size and why saturation stopped.
    pub stats: String,
}

/// Saturates `p` with the rules of `families` once and extracts the cheapest program for
/// each of `modes` (the e-graph is the same whatever the program runs under; only the
/// extraction's costs differ). `None` for a mode where the extraction changed nothing or
/// failed within the limits.
pub fn search(
    p: &Program,
    guard: &Guard,
    families: &[Family],
    limits: &Limits,
    dev: &Device,
    modes: &[Mode],
) -> Vec<Option<Found>> {
    let started = Instant::now();
    if started >= limits.deadline {
        return modes.iter().map(|_| None).collect();
    }
    let (mut g, roots) = convert::to_egraph(p, guard);
    g.analysis.matmul_tf32 = dev.matmul_tf32;
    let time = limits.time.min(limits.deadline.saturating_duration_since(Instant::now()));
    let table = rules(families);
    let rewrites: Vec<_> = table.iter().map(|r| r.rewrite()).collect();
    let runner = Runner::default()
        .with_egraph(g)
        .with_node_limit(limits.nodes)
        .with_iter_limit(limits.iters)
        .with_time_limit(time)
        .with_scheduler(BackoffScheduler::default())
        .run(&rewrites);
    let stop = match &runner.stop_reason {
        Some(StopReason::Saturated) => "saturated".to_string(),
        Some(r) => format!("{r:?}").to_lowercase(),
        None => "stopped".into(),
    };
    let g = runner.egraph;
    let stats = format!(
        "{} iterations, {} e-nodes in {} e-classes, {stop}, {:.2} s",
        runner.iterations.len(),
        g.total_number_of_nodes(),
        g.number_of_classes(),
        started.elapsed().as_secs_f64()
    );
    let origins: HashMap<Mlx, Origin> =
        g.analysis.origins.iter().map(|(n, o)| (n.clone().map_children(|c| g.find(c)), o.clone())).collect();
    let traced: HashSet<Mlx> =
        origins.iter().filter(|(_, o)| matches!(o, Origin::Traced(_))).map(|(n, _)| n.clone()).collect();
    let roots: Vec<Id> = roots.iter().map(|r| g.find(*r)).collect();
    let saturated = Saturated { g, roots, origins, traced, stats, table };
    modes.iter().map(|mode| saturated.found(p, guard, families, limits, dev, *mode)).collect()
}

/// A saturated e-graph, ready for extraction under any mode.
struct Saturated {
    g: lang::EGraph,
    roots: Vec<Id>,
    origins: HashMap<Mlx, Origin>,
    traced: HashSet<Mlx>,
    stats: String,
    table: Vec<crate::rules::Rule>,
}

impl Saturated {
    /// The cheapest program under `mode`, and each rewrite behind it; `None` where it
    /// changed nothing or the extraction failed within the limits.
    fn found(
        &self,
        p: &Program,
        guard: &Guard,
        families: &[Family],
        limits: &Limits,
        dev: &Device,
        mode: Mode,
    ) -> Option<Found> {
        let (g, roots, origins) = (&self.g, &self.roots, &self.origins);
        let picked = extract::extract(g, roots, &self.traced, dev, mode, limits.deadline)?;
        if !extract::acyclic(g, &picked.choice, roots) {
            return None;
        }
        let program = convert::to_program(g, &picked.choice, roots, p);
        let steps = steps(g, &picked.choice, roots, origins);
        if steps.is_empty() && program.nodes.len() == p.nodes.len() {
            return None;
        }
        // A greedy extraction of a large e-graph can come out modelled dearer than the
        // program it started from (gated_delta: 61.2 -> 63.4 ms): nothing gained to verify.
        let cost_before = modelled(p, guard, dev, mode, limits.deadline)?;
        if !cheaper(picked.cost, cost_before) {
            return None;
        }
        let used = rules_used(g, &picked.choice, roots, origins, &steps);
        let used_families = families
            .iter()
            .copied()
            .filter(|f| self.table.iter().any(|r| r.family == *f && used.contains_key(&r.name)))
            .collect();
        let stats = self.stats.clone();
        Some(Found {
            program,
            cost_before,
            cost_after: picked.cost,
            rules: used,
            families: used_families,
            steps,
            stats,
        })
    }
}

/// Whether an extraction modelled at `after` seconds gains on the program's `before`.
fn cheaper(after: f64, before: f64) -> bool {
    after < before
}

/// Every rule that built a node of the extracted program, and the rules of steps
/// that took another traced node (a merge that added none), with how often each did.
/// A node a commuting rule built also names the rule that built its operands' other order.
fn rules_used(
    g: &lang::EGraph,
    choice: &HashMap<Id, Mlx>,
    roots: &[Id],
    origins: &HashMap<Mlx, Origin>,
    steps: &[Step],
) -> BTreeMap<String, usize> {
    let mut used = BTreeMap::new();
    for node in reachable(g, choice, roots) {
        if let (Some(Origin::Rule(rule)), Some(_)) = (origins.get(node), node.op()) {
            *used.entry(rule.clone()).or_insert(0) += 1;
            if let (true, Some(Origin::Rule(first))) = (rule.ends_with("-commute"), origins.get(&swapped(node))) {
                *used.entry(first.clone()).or_insert(0) += 1;
            }
        }
    }
    for s in steps.iter().filter(|s| s.now_traced) {
        for r in &s.rules {
            *used.entry(r.clone()).or_insert(0) += 1;
        }
    }
    used
}

/// A two-operand node with its operands the other way round.
fn swapped(node: &Mlx) -> Mlx {
    match node {
        Mlx::Op(op, ch) if ch.len() == 2 => Mlx::Op(*op, vec![ch[1], ch[0]]),
        other => other.clone(),
    }
}

/// The chosen nodes reachable from the roots, each once.
fn reachable<'a>(g: &lang::EGraph, choice: &'a HashMap<Id, Mlx>, roots: &[Id]) -> Vec<&'a Mlx> {
    let mut seen = HashSet::new();
    let mut stack: Vec<Id> = roots.to_vec();
    let mut out = vec![];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Some(node) = choice.get(&id) else { continue };
        stack.extend(node.children().iter().map(|c| g.find(*c)));
        out.push(node);
    }
    out
}

/// For every e-class of the extracted program whose choice is not its traced node:
/// what it was, what it is now, and which rules did it.
fn steps(g: &lang::EGraph, choice: &HashMap<Id, Mlx>, roots: &[Id], origins: &HashMap<Mlx, Origin>) -> Vec<Step> {
    let mut out = vec![];
    let mut seen = HashSet::new();
    let mut stack: Vec<Id> = roots.to_vec();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) || g[id].data.args.is_some() {
            continue;
        }
        let node = &choice[&id];
        stack.extend(node.children().iter().map(|c| g.find(*c)));
        let traced_value = |n: &Mlx| match origins.get(n) {
            Some(Origin::Traced(v)) => Some(*v),
            _ => None,
        };
        let was = g[id].nodes.iter().filter_map(|n| traced_value(n).map(|v| (n, v))).min_by_key(|(_, v)| *v);
        let Some((was_node, was_value)) = was else { continue };
        if was_node == node {
            continue;
        }
        let (now, now_traced, rules) = match origins.get(node) {
            Some(Origin::Traced(v)) => (format!("%{v} ({node})"), true, union_rule(g, id).into_iter().collect()),
            Some(Origin::Rule(r)) => (node.to_string(), false, vec![r.clone()]),
            None => (node.to_string(), false, union_rule(g, id).into_iter().collect()),
        };
        out.push((was_value, Step { original: format!("%{was_value} = {was_node}"), now, now_traced, rules }));
    }
    out.sort_by_key(|(v, _)| *v);
    out.into_iter().map(|(_, s)| s).collect()
}

/// The first rule that merged something into e-class `id` (for merges that add no node).
fn union_rule(g: &lang::EGraph, id: Id) -> Option<String> {
    g.analysis
        .unions
        .iter()
        .find(|(a, b, r)| (g.find(*a) == id || g.find(*b) == id) && !r.contains("commute"))
        .map(|(_, _, r)| r.clone())
}

#[cfg(test)]
mod tests {
    use super::cheaper;

    #[test]
    fn only_an_extraction_modelled_cheaper_is_found() {
        assert!(cheaper(23.356e-3, 25.313e-3));
        // Near misses: no gain, and the greedy extraction's loss on gated_delta.
        assert!(!cheaper(25.313e-3, 25.313e-3));
        assert!(!cheaper(63.388e-3, 61.162e-3));
    }
}
