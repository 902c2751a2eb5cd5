//! Extraction: one e-node per e-class, cheapest under the cost model, with shared
//! e-classes counted once (a DAG-aware greedy: each class's cost is the summed
//! cost of the set of classes its choice needs, improved until nothing changes).
//! Past [`DAG_AWARE_CLASSES`] it falls back to the plain greedy sum over children.

use super::cost::{node_cost, Device, Mode};
use super::lang::{EGraph, Mlx};
use egg::{Id, Language};
use fixedbitset::FixedBitSet;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

pub struct Extraction {
    pub choice: HashMap<Id, Mlx>,
    /// Modelled seconds of the extracted program.
    pub cost: f64,
}

/// Nodes the trace had win ties, so an extraction changes only what it must.
const RULE_MADE_PENALTY: f64 = 1e-9;

/// Up to this many e-classes, shared classes are counted once (a bit set per class);
/// above it, a class costs its node plus its children's costs (shared ones counted again).
pub const DAG_AWARE_CLASSES: usize = 30_000;

/// The best found so far for one e-class: its total, the chosen node's own cost and,
/// when DAG-aware, the set of classes it needs (itself included).
#[derive(Clone)]
struct Best {
    total: f64,
    own: f64,
    needs: Option<FixedBitSet>,
}

struct Extractor<'a> {
    g: &'a EGraph,
    ids: Vec<Id>,
    index: HashMap<Id, usize>,
    costs: Vec<Vec<(f64, &'a Mlx)>>,
    best: Vec<Option<Best>>,
    choice: HashMap<Id, Mlx>,
    dag: bool,
}

/// The cheapest program: a worklist that re-evaluates a class's parents whenever its
/// best improves, until nothing improves. `None` past the deadline or when a root has
/// no finite choice.
pub fn extract(
    g: &EGraph,
    roots: &[Id],
    traced: &HashSet<Mlx>,
    dev: &Device,
    mode: Mode,
    deadline: Instant,
) -> Option<Extraction> {
    extract_within(g, roots, traced, dev, mode, deadline, DAG_AWARE_CLASSES)
}

fn extract_within(
    g: &EGraph,
    roots: &[Id],
    traced: &HashSet<Mlx>,
    dev: &Device,
    mode: Mode,
    deadline: Instant,
    dag_bound: usize,
) -> Option<Extraction> {
    let mut ids: Vec<Id> = g.classes().map(|c| c.id).collect();
    ids.sort();
    let index: HashMap<Id, usize> = ids.iter().enumerate().map(|(k, id)| (*id, k)).collect();
    let costs = ids.iter().map(|id| node_costs(g, *id, traced, dev, mode)).collect();
    let n = ids.len();
    let mut x = Extractor { g, ids, index, costs, best: vec![None; n], choice: HashMap::new(), dag: n <= dag_bound };
    let mut queue: VecDeque<usize> = (0..n).collect();
    let mut queued = vec![true; n];
    let mut popped = 0usize;
    while let Some(k) = queue.pop_front() {
        queued[k] = false;
        popped += 1;
        if popped.is_multiple_of(1024) && Instant::now() > deadline {
            return None;
        }
        if !x.improve(k) {
            continue;
        }
        for p in g[x.ids[k]].parents() {
            let j = x.index[&g.find(p)];
            if !queued[j] {
                queued[j] = true;
                queue.push_back(j);
            }
        }
    }
    let roots: Vec<Id> = roots.iter().map(|r| g.find(*r)).collect();
    if roots.iter().any(|r| x.best[x.index[r]].is_none()) {
        return None;
    }
    let cost = reachable_cost(&x, &roots);
    Some(Extraction { choice: x.choice, cost })
}

fn node_costs<'a>(g: &'a EGraph, id: Id, traced: &HashSet<Mlx>, dev: &Device, mode: Mode) -> Vec<(f64, &'a Mlx)> {
    g[id]
        .nodes
        .iter()
        .map(|node| {
            let c = node_cost(g, id, node, dev, mode);
            let penalty = if traced.contains(node) { 0.0 } else { RULE_MADE_PENALTY * (1.0 + c) };
            (c + penalty, node)
        })
        .collect()
}

impl Extractor<'_> {
    /// Re-evaluates class `k`'s nodes; whether its best improved.
    fn improve(&mut self, k: usize) -> bool {
        if self.g[self.ids[k]].data.args.is_some() {
            return false;
        }
        let mut improved = false;
        for m in 0..self.costs[k].len() {
            let (c, node) = self.costs[k][m];
            if !c.is_finite() {
                continue;
            }
            let Some(mut b) = self.candidate(node, c, k) else { continue };
            if self.best[k].as_ref().is_none_or(|old| b.total < old.total - 1e-15) {
                if let Some(set) = b.needs.as_mut() {
                    set.insert(k);
                }
                self.best[k] = Some(b);
                self.choice.insert(self.ids[k], node.clone());
                improved = true;
            }
        }
        improved
    }

    /// What choosing `node` (own cost `c`) for class `k` would cost; `None` if a child has
    /// no choice yet or (DAG-aware) needs class `k` itself.
    fn candidate(&self, node: &Mlx, c: f64, k: usize) -> Option<Best> {
        let n = self.ids.len();
        let mut set = self.dag.then(|| FixedBitSet::with_capacity(n));
        let mut children = 0.0;
        for child in node.children() {
            let child = self.g.find(*child);
            if self.g[child].data.args.is_some() {
                continue;
            }
            let b = self.best[self.index[&child]].as_ref()?;
            match (&mut set, &b.needs) {
                (Some(s), Some(needs)) => s.union_with(needs),
                _ => children += b.total,
            }
        }
        match set {
            Some(s) if s.contains(k) => None,
            Some(s) => Some(Best {
                total: c + s.ones().filter_map(|j| self.best[j].as_ref()).map(|b| b.own).sum::<f64>(),
                own: c,
                needs: Some(s),
            }),
            None => Some(Best { total: c + children, own: c, needs: None }),
        }
    }
}

/// The chosen program's cost, each class it reaches counted once.
fn reachable_cost(x: &Extractor, roots: &[Id]) -> f64 {
    let mut seen = HashSet::new();
    let mut stack = roots.to_vec();
    let mut total = 0.0;
    while let Some(id) = stack.pop() {
        if !seen.insert(id) || x.g[id].data.args.is_some() {
            continue;
        }
        let Some(b) = x.best[x.index[&id]].as_ref() else { continue };
        total += b.own;
        stack.extend(x.choice[&id].children().iter().map(|c| x.g.find(*c)));
    }
    total
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
            let kids: Vec<Id> =
                node.children().iter().map(|c| g.find(*c)).filter(|c| g[*c].data.args.is_none()).collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{has_op, TestGraph};
    use crate::rules::Family;
    use std::time::Duration;
    use superopt_ir::Op;

    /// An unrolled recurrence: 5,000 nodes deep, one scalar shared by every step.
    fn deep_chain() -> (EGraph, Id) {
        let (mut t, x) = TestGraph::new(&[&[4, 8]]);
        let half = t.scalar(0.5, &[4, 8]);
        let mut h = x[0];
        for _ in 0..2500 {
            h = t.op(Op::Multiply, &[], &[h, half]);
            h = t.op(Op::Tanh, &[], &[h]);
        }
        (t.saturate(&[Family::Layout]), h)
    }

    fn reaches_broadcast(g: &EGraph, e: &Extraction, root: Id) -> bool {
        let mut stack = vec![g.find(root)];
        let mut seen = HashSet::new();
        while let Some(id) = stack.pop() {
            if !seen.insert(id) || g[id].data.args.is_some() {
                continue;
            }
            let node = &e.choice[&id];
            if node.op() == Some(Op::Broadcast) {
                return true;
            }
            stack.extend(node.children().iter().map(|c| g.find(*c)));
        }
        false
    }

    #[test]
    fn a_five_thousand_node_chain_extracts_in_both_modes() {
        let (g, root) = deep_chain();
        assert!(has_op(&g, root, Op::Tanh));
        let far = Instant::now() + Duration::from_secs(60);
        for bound in [DAG_AWARE_CLASSES, 0] {
            let e = extract_within(&g, &[root], &HashSet::new(), &Device::default(), Mode::Eager, far, bound)
                .expect("extracts");
            assert!(e.cost.is_finite() && e.cost > 0.0);
            // implicit broadcasting won at every step: no materialised scalar is left
            assert!(!reaches_broadcast(&g, &e, root), "bound {bound}");
            assert!(acyclic(&g, &e.choice, &[root]));
        }
    }

    #[test]
    fn a_past_deadline_gives_nothing() {
        let (g, root) = deep_chain();
        assert!(extract(&g, &[root], &HashSet::new(), &Device::default(), Mode::Eager, Instant::now()).is_none());
    }
}
