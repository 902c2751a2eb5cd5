//! Extraction: one e-node per e-class, cheapest under the cost model, with shared
//! e-classes counted once (a DAG-aware greedy: each class's cost is the summed
//! cost of the set of classes its choice needs, improved until nothing changes).

use super::cost::{node_cost, Device, Mode};
use super::lang::{EGraph, Mlx};
use egg::{Id, Language};
use fixedbitset::FixedBitSet;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

pub struct Extraction {
    pub choice: HashMap<Id, Mlx>,
    /// Modelled seconds of the extracted program.
    pub cost: f64,
}

/// Nodes the trace had win ties, so an extraction changes only what it must.
const RULE_MADE_PENALTY: f64 = 1e-9;

pub fn extract(g: &EGraph, roots: &[Id], traced: &HashSet<Mlx>, dev: &Device, mode: Mode, deadline: Instant) -> Option<Extraction> {
    let ids: Vec<Id> = g.classes().map(|c| c.id).collect();
    let index: HashMap<Id, usize> = ids.iter().enumerate().map(|(k, id)| (*id, k)).collect();
    let n = ids.len();
    let mut own = vec![0.0f64; n];
    let mut best: Vec<Option<(f64, FixedBitSet)>> = vec![None; n];
    let mut choice: HashMap<Id, Mlx> = HashMap::new();
    let costs: Vec<Vec<(f64, &Mlx)>> = ids
        .iter()
        .map(|id| {
            g[*id]
                .nodes
                .iter()
                .map(|node| {
                    let c = node_cost(g, *id, node, dev, mode);
                    let penalty = if traced.contains(node) { 0.0 } else { RULE_MADE_PENALTY * (1.0 + c) };
                    (c + penalty, node)
                })
                .collect()
        })
        .collect();
    for _pass in 0..8 {
        let mut changed = false;
        for (k, id) in ids.iter().enumerate() {
            if g[*id].data.args.is_some() {
                continue;
            }
            for (c, node) in &costs[k] {
                if !c.is_finite() {
                    continue;
                }
                let Some(set) = needed(g, node, &index, &best, k, n) else { continue };
                let total = c + set.ones().map(|j| own[j]).sum::<f64>();
                if best[k].as_ref().is_none_or(|(b, _)| total < *b - 1e-15) {
                    let mut set = set;
                    set.insert(k);
                    best[k] = Some((total, set));
                    own[k] = *c;
                    choice.insert(*id, (*node).clone());
                    changed = true;
                }
            }
            if Instant::now() > deadline {
                return None;
            }
        }
        if !changed {
            break;
        }
    }
    let mut all = FixedBitSet::with_capacity(n);
    for r in roots {
        all.union_with(&best[index[&g.find(*r)]].as_ref()?.1);
    }
    let cost = all.ones().map(|j| own[j]).sum();
    Some(Extraction { choice, cost })
}

/// The classes `node`'s children need, or `None` if one has no choice yet or needs class `k` itself.
fn needed(g: &EGraph, node: &Mlx, index: &HashMap<Id, usize>, best: &[Option<(f64, FixedBitSet)>], k: usize, n: usize) -> Option<FixedBitSet> {
    let mut set = FixedBitSet::with_capacity(n);
    for c in node.children() {
        let c = g.find(*c);
        if g[c].data.args.is_some() {
            continue;
        }
        let (_, s) = best[index[&c]].as_ref()?;
        set.union_with(s);
    }
    (!set.contains(k)).then_some(set)
}

/// Whether the chosen nodes reachable from `roots` form a DAG.
pub fn acyclic(g: &EGraph, choice: &HashMap<Id, Mlx>, roots: &[Id]) -> bool {
    // 0 unseen, 1 on the path, 2 finished.
    let mut state: HashMap<Id, u8> = HashMap::new();
    for r in roots {
        let mut stack = vec![(g.find(*r), 0usize)];
        if state.get(&stack[0].0) == Some(&2) {
            continue;
        }
        state.insert(stack[0].0, 1);
        while let Some((id, next)) = stack.pop() {
            let Some(node) = choice.get(&id) else { return false };
            let kids: Vec<Id> = node.children().iter().map(|c| g.find(*c)).filter(|c| g[*c].data.args.is_none()).collect();
            if next == kids.len() {
                state.insert(id, 2);
                continue;
            }
            stack.push((id, next + 1));
            match state.get(&kids[next]).copied().unwrap_or(0) {
                1 => return false,
                0 => {
                    state.insert(kids[next], 1);
                    stack.push((kids[next], 0));
                }
                _ => {}
            }
        }
    }
    true
}
