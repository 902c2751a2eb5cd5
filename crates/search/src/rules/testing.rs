//! Small e-graphs for rule tests: inputs of given shapes, nodes added by hand.

use super::{rules, Family};
use crate::egraph::lang::{add_args, Analysis, ConstEntry, EGraph, Mlx};
use egg::{Id, Runner};
use superopt_ir::Op;
use superopt_ir::{Arg, ConstData, Dim, Dtype, ScalarExpr, Value};

pub struct TestGraph {
    pub g: EGraph,
}

pub fn ints(xs: &[i64]) -> Arg {
    Arg::ints(xs)
}

impl TestGraph {
    /// Float32 inputs of these shapes: `in0`, `in1`...
    pub fn new(shapes: &[&[i64]]) -> (TestGraph, Vec<Id>) {
        TestGraph::typed(shapes, Dtype::Float32)
    }

    /// Inputs of these shapes and `dtype`.
    pub fn typed(shapes: &[&[i64]], dtype: Dtype) -> (TestGraph, Vec<Id>) {
        let mut a = Analysis::default();
        a.tables.inputs = shapes.iter().map(|s| Value { shape: s.to_vec(), dtype }).collect();
        let mut g = EGraph::new(a);
        let ids = (0..shapes.len()).map(|i| g.add(Mlx::Input(i as u32))).collect();
        (TestGraph { g }, ids)
    }

    pub fn op(&mut self, op: Op, args: &[Arg], inputs: &[Id]) -> Id {
        let mut children = vec![];
        if !args.is_empty() {
            children.push(add_args(&mut self.g, args));
        }
        children.extend_from_slice(inputs);
        let node = Mlx::Op(op, children);
        self.g.analysis.origins.insert(node.clone(), crate::egraph::lang::Origin::Traced(usize::MAX));
        self.g.add(node)
    }

    /// Gives `id` the traced value inference cannot know (e.g. an `Arange`'s dtype).
    pub fn set_value(&mut self, id: Id, shape: &[i64], dtype: Dtype) {
        let mut d = self.g[id].data.clone();
        d.values = vec![Value { shape: shape.to_vec(), dtype }];
        d.dims = Some(shape.iter().map(|n| Dim::constant(*n)).collect());
        self.g.set_analysis_data(id, d);
    }

    /// A 0-d float32 constant broadcast to `shape` as MLX's export writes it.
    pub fn scalar(&mut self, v: f64, shape: &[i64]) -> Id {
        let value = Value { shape: vec![], dtype: Dtype::Float32 };
        let i = self
            .g
            .analysis
            .tables
            .intern_const(ConstEntry { value, data: ConstData::Scalar { expr: ScalarExpr::Lit { v } } }, Some(v));
        let c = self.g.add(Mlx::Const(i));
        if shape.is_empty() {
            return c;
        }
        self.op(Op::Broadcast, &[ints(shape)], &[c])
    }

    /// Runs the rules of `families` to saturation (or the limits).
    pub fn saturate(self, families: &[Family]) -> EGraph {
        let rewrites: Vec<_> = rules(families).iter().map(|r| r.rewrite()).collect();
        let runner = Runner::default().with_egraph(self.g).with_iter_limit(12).with_node_limit(20_000).run(&rewrites);
        runner.egraph
    }
}

/// Whether e-class `id` holds a node of primitive `op`.
pub fn has_op(g: &EGraph, id: Id, op: Op) -> bool {
    g[g.find(id)].nodes.iter().any(|n| n.op() == Some(op))
}
