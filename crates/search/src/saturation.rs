//! The e-graph strategy: every plan variant saturated with the rule families and
//! extracted for eager and for compiled execution, with and without the `mx.fast`
//! substitutions (they may be slower on the device at hand: timing decides).

use crate::candidate::{Candidate, Compile, Source};
use crate::egraph::cost::{Device, Mode};
use crate::rules::Family;
use crate::saturate::{search, Found, Limits};
use crate::strategies::{compile_rule, with_compile_rule};
use crate::strategy::Strategy;
use std::time::{Duration, Instant};
use superopt_ir::Plan;

pub struct Saturation {
    /// For all searches together.
    pub time: Duration,
    pub device: Device,
}

const WITHOUT_FAST: [Family; 3] = [Family::Layout, Family::Algebra, Family::Sharing];

impl Strategy for Saturation {
    fn name(&self) -> &'static str {
        "egraph"
    }

    fn propose(&self, traced: &Plan) -> Vec<Candidate> {
        // Saturation starts from the loop's iterations batched (one node for every
        // iteration's slices), which no rewrite of one iteration's nodes finds.
        let (start, batched) = crate::strategies::batched(traced);
        let mut out = self.propose_from(&start);
        for c in out.iter_mut() {
            c.rules.splice(0..0, crate::strategies::batch_rule(batched));
        }
        out
    }
}

impl Saturation {
    fn propose_from(&self, traced: &Plan) -> Vec<Candidate> {
        // One saturation per variant and family set, which the eager and the compiled
        // extraction share; each saturates for a quarter of its share, the rest left to
        // converting, two extractions and costing (a longer saturation grows the e-graph the
        // extractions walk: at 67k nodes they, not saturating, take the time). No search runs
        // past the strategy's time.
        let searches = 2 * traced.variants.len() as u32;
        let nodes = traced.node_count();
        let limits = Limits {
            time: self.time / (4 * searches.max(1)),
            nodes: (nodes * 20).clamp(20_000, 300_000),
            iters: 30,
            deadline: Instant::now() + self.time,
        };
        let mut out: Vec<Candidate> = vec![];
        let mut used_fast = false;
        for (families, source) in [(&Family::ALL[..], Source::Egraph), (&WITHOUT_FAST[..], Source::EgraphNoFast)] {
            if source == Source::EgraphNoFast && !used_fast {
                break;
            }
            for (c, families_used) in candidates(traced, families, &limits, &self.device, source) {
                used_fast |= families_used.contains(&Family::Fast);
                let isl = islands(&c);
                for c in std::iter::once(c).chain(isl) {
                    if !out.iter().any(|o| o.plan == c.plan && o.compile == c.compile) {
                        out.push(c);
                    }
                }
            }
        }
        out
    }
}

/// How each extraction runs, and the candidate's compile.
const MODES: [(Mode, Compile); 2] = [(Mode::Eager, Compile::Eager), (Mode::Compiled, Compile::Whole)];

/// The compiled extraction with only its elementwise islands compiled, where that differs.
fn islands(c: &Candidate) -> Option<Candidate> {
    if c.compile != Compile::Whole || !c.plan.variants.iter().any(|(_, p)| superopt_ir::passes::has_islands(p)) {
        return None;
    }
    let whole = compile_rule(Compile::Whole);
    let rules: Vec<String> = c.rules.iter().filter(|r| Some(r.as_str()) != whole).cloned().collect();
    Some(Candidate { compile: Compile::Islands, rules: with_compile_rule(rules, Compile::Islands), ..c.clone() })
}

/// The candidates of one family set, eager and compiled (each variant saturated once), with
/// the rule families that shaped each.
fn candidates(
    traced: &Plan,
    families: &[Family],
    limits: &Limits,
    dev: &Device,
    source: Source,
) -> Vec<(Candidate, Vec<Family>)> {
    let modes = MODES.map(|(mode, _)| mode);
    let mut plans = MODES.map(|_| traced.clone());
    let mut found: [Vec<Found>; 2] = Default::default();
    for (v, (guard, program)) in traced.variants.iter().enumerate() {
        for (k, f) in search(program, guard, families, limits, dev, &modes).into_iter().enumerate() {
            if let Some(f) = f {
                plans[k].variants[v].1 = f.program.clone();
                found[k].push(f);
            }
        }
    }
    MODES
        .into_iter()
        .zip(plans)
        .zip(found)
        .filter_map(|(((_, compile), plan), found)| candidate(plan, found, families, compile, source))
        .collect()
}

/// The candidate of one extraction over every variant, and the rule families that shaped it.
fn candidate(
    plan: Plan,
    found: Vec<Found>,
    families: &[Family],
    compile: Compile,
    source: Source,
) -> Option<(Candidate, Vec<Family>)> {
    let hoisted: usize = plan
        .variants
        .iter()
        .filter_map(|(_, p)| superopt_ir::passes::hoistable(p))
        .map(|h| h.iter().filter(|x| **x).count())
        .sum();
    if found.is_empty() && hoisted == 0 {
        return None;
    }
    // Each rule once, its uses summed over the per-size programs.
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut explain: Vec<String> = vec![];
    for f in &found {
        for (r, n) in &f.rules {
            *counts.entry(r).or_default() += n;
        }
        explain.push(format!(
            "e-graph: {}; modelled {:.3} ms -> {:.3} ms",
            f.stats,
            f.cost_before * 1e3,
            f.cost_after * 1e3
        ));
        explain.extend(f.steps.iter().map(|s| format!("{} -> {}   [{}]", s.original, s.now, s.rules.join(", "))));
    }
    let mut rules: Vec<String> = counts.iter().map(|(r, n)| format!("{r} x{n}")).collect();
    if hoisted > 0 {
        rules.push(format!("hoist: {hoisted} input-independent nodes computed once per input shape"));
    }
    let used: Vec<Family> = families.iter().copied().filter(|f| found.iter().any(|x| x.families.contains(f))).collect();
    let c = Candidate {
        explain,
        hoist: hoisted > 0,
        ..Candidate::new(source, plan, compile, with_compile_rule(rules, compile))
    };
    Some((c, used))
}
