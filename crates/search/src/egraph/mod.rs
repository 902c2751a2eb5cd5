//! The e-graph: the traced program into an `egg` e-graph with a shape-aware analysis
//! (`lang`, `shape`, `convert`), the constant folder (`fold`), the cost model (`cost`) and
//! extraction (`extract`). Saturation with the rules is `crate::saturate`.

pub mod convert;
pub mod cost;
pub mod extract;
pub mod fold;
pub mod lang;
pub mod shape;

use cost::{Device, Mode};
use lang::Mlx;
use std::collections::HashSet;
use std::time::Instant;
use superopt_ir::{Guard, Program};

/// The modelled cost of a program, node by node as written, if the model is done with it
/// by `deadline`; else one launch per node (a program that large is bound by launches).
pub fn program_cost(p: &Program, guard: &Guard, dev: &Device, mode: Mode, deadline: Instant) -> f64 {
    modelled(p, guard, dev, mode, deadline).unwrap_or(p.nodes.len() as f64 * dev.launch_s.max(1e-6))
}

/// The modelled cost of a program, node by node as written; `None` past `deadline`.
pub fn modelled(p: &Program, guard: &Guard, dev: &Device, mode: Mode, deadline: Instant) -> Option<f64> {
    let (g, roots) = convert::to_egraph(p, guard);
    if Instant::now() >= deadline {
        return None;
    }
    let traced: HashSet<Mlx> = g.analysis.origins.keys().cloned().collect();
    extract::extract(&g, &roots, &traced, dev, mode, deadline).map(|e| e.cost)
}
