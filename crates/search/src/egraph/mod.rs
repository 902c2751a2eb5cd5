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
use std::time::{Duration, Instant};
use superopt_ir::{Guard, Program};

/// The modelled cost of a program, node by node as written.
pub fn program_cost(p: &Program, guard: &Guard, dev: &Device, mode: Mode) -> f64 {
    let (g, roots) = convert::to_egraph(p, guard);
    let traced: HashSet<Mlx> = g.analysis.origins.keys().cloned().collect();
    let far = Instant::now() + Duration::from_secs(30);
    extract::extract(&g, &roots, &traced, dev, mode, far).map_or(f64::NAN, |e| e.cost)
}
