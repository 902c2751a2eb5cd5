//! A traced program into an e-graph, and an extracted choice back into a program.

use super::lang::{add_args, Analysis, ConstEntry, Data, EGraph, Mlx, Origin};
use egg::{Id, Language};
use std::collections::HashMap;
use superopt_ir::{Arg, ConstData, Constant, Dim, Guard, Node, Program, ScalarExpr, Value, ValueId};

/// The e-graph of `p`, and the e-classes of its outputs.
pub fn to_egraph(p: &Program, guard: &Guard) -> (EGraph, Vec<Id>) {
    let mut analysis = Analysis::default();
    analysis.tables.inputs = p.inputs.iter().map(|i| p.value(*i).clone()).collect();
    for t in guard.varying() {
        analysis.tables.varying.insert(t, t);
    }
    for (a, b) in &guard.ties {
        let rep = *analysis.tables.varying.get(a).unwrap_or(a);
        analysis.tables.varying.insert(*b, rep);
    }
    let mut g = EGraph::new(analysis);
    let mut class: HashMap<ValueId, Id> = HashMap::new();
    for (k, v) in p.inputs.iter().enumerate() {
        class.insert(*v, add_traced(&mut g, Mlx::Input(k as u32), &[p.value(*v).clone()], *v));
    }
    let reference = g.analysis.tables.reference_shapes();
    for c in &p.constants {
        let value = p.value(c.value).clone();
        let scalar = scalar_value(&c.data, &reference, &value);
        let i = g.analysis.tables.intern_const(ConstEntry { value: value.clone(), data: c.data.clone() }, scalar);
        class.insert(c.value, add_traced(&mut g, Mlx::Const(i), &[value], c.value));
    }
    for n in &p.nodes {
        let mut children = vec![];
        if !n.args.is_empty() {
            children.push(add_args(&mut g, &n.args));
        }
        children.extend(n.inputs.iter().map(|i| class[i]));
        let values: Vec<Value> = n.outputs.iter().map(|o| p.value(*o).clone()).collect();
        let id = add_traced(&mut g, Mlx::Op(n.op, children), &values, n.outputs[0]);
        if n.outputs.len() == 1 {
            class.insert(n.outputs[0], id);
            continue;
        }
        for (k, o) in n.outputs.iter().enumerate() {
            let a = add_args(&mut g, &[Arg::Int(Dim::constant(k as i64))]);
            let get = add_traced(&mut g, Mlx::Get(vec![a, id]), &[p.value(*o).clone()], *o);
            class.insert(*o, get);
        }
    }
    g.rebuild();
    let roots = p.outputs.iter().map(|o| g.find(class[o])).collect();
    (g, roots)
}

/// Adds a traced node; the trace's shapes win over inference (which keeps its dims when it agrees).
fn add_traced(g: &mut EGraph, node: Mlx, values: &[Value], first: ValueId) -> Id {
    let id = g.add(node.clone());
    let inferred = g[id].data.clone();
    if inferred.values != values {
        let dims = if inferred.values.iter().map(|v| &v.shape).eq(values.iter().map(|v| &v.shape)) {
            inferred.dims
        } else {
            None
        };
        g.set_analysis_data(id, Data { values: values.to_vec(), dims, ..inferred });
    }
    g.analysis.origins.entry(node).or_insert(Origin::Traced(first));
    id
}

/// The value of a scalar constant at the reference size, rounded to its dtype.
fn scalar_value(data: &ConstData, reference: &[Vec<i64>], v: &Value) -> Option<f64> {
    let ConstData::Scalar { expr } = data else { return None };
    let x = match expr {
        ScalarExpr::Lit { v } => *v,
        ScalarExpr::Recip { dim } => 1.0 / dim.eval(reference)? as f64,
        ScalarExpr::Rsqrt { dim } => (dim.eval(reference)? as f64).powf(-0.5),
        ScalarExpr::Of { dim } => dim.eval(reference)? as f64,
    };
    Some(round_to(x, v.dtype))
}

pub fn round_to(x: f64, d: superopt_ir::Dtype) -> f64 {
    use superopt_ir::Dtype::*;
    match d {
        Float32 => x as f32 as f64,
        Float16 => half::f16::from_f64(x).to_f64(),
        Bfloat16 => half::bf16::from_f64(x).to_f64(),
        _ => x,
    }
}

/// The program that computes `roots` with the node `choice` picks in each e-class.
/// `like` gives the signature and input order.
pub fn to_program(g: &EGraph, choice: &HashMap<Id, Mlx>, roots: &[Id], like: &Program) -> Program {
    let mut b = Builder {
        g,
        choice,
        p: Program {
            values: vec![],
            inputs: vec![],
            constants: vec![],
            nodes: vec![],
            outputs: vec![],
            signature: like.signature.clone(),
        },
        done: HashMap::new(),
    };
    for v in &like.inputs {
        let id = b.p.values.len();
        b.p.values.push(like.value(*v).clone());
        b.p.inputs.push(id);
    }
    let outputs = roots.iter().map(|r| b.value_of(g.find(*r))).collect();
    b.p.outputs = outputs;
    b.p
}

struct Builder<'a> {
    g: &'a EGraph,
    choice: &'a HashMap<Id, Mlx>,
    p: Program,
    /// The values each visited e-class produced.
    done: HashMap<Id, Vec<ValueId>>,
}

impl<'a> Builder<'a> {
    /// A node's arguments (where its first child is an `Args` leaf) and array inputs.
    fn split<'c>(&self, children: &'c [Id]) -> (Vec<Arg>, &'c [Id]) {
        match children.first().and_then(|c| self.g[*c].data.args) {
            Some(a) => (self.g.analysis.tables.args[a as usize].clone(), &children[1..]),
            None => (vec![], children),
        }
    }

    fn value_of(&mut self, root: Id) -> ValueId {
        // Post-order without recursion: deep graphs (unrolled loops) would overflow the stack.
        let mut stack = vec![(root, false)];
        while let Some((id, expanded)) = stack.pop() {
            if self.done.contains_key(&id) {
                continue;
            }
            let node = &self.choice[&id];
            if !expanded {
                stack.push((id, true));
                for c in node.children() {
                    let c = self.g.find(*c);
                    if !self.done.contains_key(&c) && self.g[c].data.args.is_none() {
                        stack.push((c, false));
                    }
                }
                continue;
            }
            let values = self.emit(id, node);
            self.done.insert(id, values);
        }
        self.done[&root][0]
    }

    fn new_value(&mut self, v: &Value) -> ValueId {
        self.p.values.push(v.clone());
        self.p.values.len() - 1
    }

    fn emit(&mut self, id: Id, node: &Mlx) -> Vec<ValueId> {
        let data = &self.g[id].data;
        match node {
            Mlx::Input(i) => vec![self.p.inputs[*i as usize]],
            Mlx::Const(i) => {
                let entry = &self.g.analysis.tables.consts[*i as usize];
                let v = self.new_value(&entry.value);
                self.p.constants.push(Constant { value: v, data: entry.data.clone() });
                vec![v]
            }
            Mlx::Args(_) => unreachable!("args leaves are read by their node"),
            Mlx::Get(children) => {
                let (args, inputs) = self.split(children);
                let tuple = &self.done[&self.g.find(inputs[0])];
                let k = args[0].int().and_then(Dim::as_const).unwrap_or(0) as usize;
                vec![tuple[k]]
            }
            Mlx::Op(op, children) => {
                let (args, inputs) = self.split(children);
                let ins: Vec<ValueId> = inputs.iter().map(|c| self.done[&self.g.find(*c)][0]).collect();
                let outs: Vec<ValueId> = data.values.clone().iter().map(|v| self.new_value(v)).collect();
                self.p.nodes.push(Node { op: *op, args, inputs: ins, outputs: outs.clone() });
                outs
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A float32 and a uint8 `arange(8)` as MLX traces them (the dtype in the outputs
    /// alone): import makes the dtype an argument, so the e-graph keeps two classes.
    #[test]
    fn a_traced_arange_keeps_its_dtype() {
        let range = |name: &str, dtype: &str| {
            format!(
                r#"{{"op": "Arange", "args": [0.0, 8.0, 1.0], "inputs": [], "outputs": [["{name}", [8], "{dtype}"]]}}"#
            )
        };
        let text = format!(
            r#"{{"params": [{{"name": "x", "kind": "array", "array": "A"}}], "output_kind": "tuple",
                "inputs": [["A", [8], "float32"]], "outputs": [["P", [8], "float32"], ["Q", [8], "uint8"]],
                "constants": [], "nodes": [{}, {}]}}"#,
            range("P", "float32"),
            range("Q", "uint8")
        );
        let p = superopt_ir::import_trace(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(p.nodes[1].args[3], Arg::Dtype(superopt_ir::Dtype::Uint8));
        let types = [(vec![8], superopt_ir::Dtype::Float32)];
        let (g, roots) = to_egraph(&p, &Guard::exact(&types));
        assert_ne!(roots[0], roots[1]);
        assert_eq!(g[roots[1]].data.values[0].dtype, superopt_ir::Dtype::Uint8);
    }
}
