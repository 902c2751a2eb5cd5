//! Rewrite rules, as data: a pattern to match, and a pattern or a small builder to
//! add, guarded by conditions on the matched e-classes' shapes, dtypes and values.
//!
//! One module per family; each says what its rules may touch:
//! - [`layout`]: transposes, reshapes, broadcasts and copies that change no value;
//! - [`algebra`]: exact identities, constant folding, scalars through matmul, matmul association;
//! - [`fast`]: hand-written patterns replaced by `mx.fast` / `mx.softmax` primitives;
//! - [`sharing`]: products over broadcast operands computed once at the unexpanded size.

pub mod algebra;
pub mod fast;
pub mod layout;
pub mod sharing;

use crate::egraph::lang::{add_args, Data, EGraph, Mlx};
use crate::egraph::shape::split_args;
use egg::{ENodeOrVar, Id, Pattern, Rewrite, Subst, Var};
use superopt_ir::{Arg, ConstData, Dtype, Op, ScalarExpr, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Layout,
    Algebra,
    Fast,
    Sharing,
}

impl Family {
    pub const ALL: [Family; 4] = [Family::Layout, Family::Algebra, Family::Fast, Family::Sharing];

    pub fn name(self) -> &'static str {
        match self {
            Family::Layout => "layout",
            Family::Algebra => "algebra",
            Family::Fast => "fast",
            Family::Sharing => "sharing",
        }
    }
}

pub type Cond = fn(&Ctx) -> bool;
pub type Build = fn(&mut Ctx) -> Option<Id>;

#[derive(Clone)]
pub enum Rhs {
    /// Instantiate this pattern where the condition holds.
    Pattern(Pattern<Mlx>, Cond),
    /// Build the replacement (new arguments, constants...); `None` declines.
    Build(Build),
}

#[derive(Clone)]
pub struct Rule {
    /// `family/what`, e.g. `layout/transpose-compose`.
    pub name: String,
    pub family: Family,
    pub lhs: Pattern<Mlx>,
    pub rhs: Rhs,
}

fn always(_: &Ctx) -> bool {
    true
}

impl Rule {
    pub fn pattern(family: Family, name: &str, lhs: &str, rhs: &str) -> Rule {
        Rule::when(family, name, lhs, rhs, always)
    }

    pub fn when(family: Family, name: &str, lhs: &str, rhs: &str, cond: Cond) -> Rule {
        let rhs = Rhs::Pattern(rhs.parse().unwrap_or_else(|e| panic!("rule {name}: {e}")), cond);
        Rule { name: format!("{}/{name}", family.name()), family, lhs: parse(name, lhs), rhs }
    }

    pub fn build(family: Family, name: &str, lhs: &str, build: Build) -> Rule {
        Rule { name: format!("{}/{name}", family.name()), family, lhs: parse(name, lhs), rhs: Rhs::Build(build) }
    }

    pub fn rewrite(&self) -> Rewrite<Mlx, crate::egraph::lang::Analysis> {
        Rewrite::new(self.name.as_str(), self.lhs.clone(), Apply(self.clone())).expect("rule variables are bound")
    }
}

fn parse(name: &str, lhs: &str) -> Pattern<Mlx> {
    lhs.parse().unwrap_or_else(|e| panic!("rule {name}: {e}"))
}

/// Every rule of these families.
pub fn rules(families: &[Family]) -> Vec<Rule> {
    let mut all = vec![];
    all.extend(layout::rules());
    all.extend(algebra::rules());
    all.extend(fast::rules());
    all.extend(sharing::rules());
    all.retain(|r| families.contains(&r.family));
    all
}

struct Apply(Rule);

impl egg::Applier<Mlx, crate::egraph::lang::Analysis> for Apply {
    fn apply_one(
        &self,
        egraph: &mut EGraph,
        eclass: Id,
        subst: &Subst,
        _: Option<&egg::PatternAst<Mlx>>,
        _: egg::Symbol,
    ) -> Vec<Id> {
        let mut cx = Ctx { g: egraph, subst, rule: &self.0.name, class: eclass };
        let new = match &self.0.rhs {
            Rhs::Pattern(p, cond) => {
                if !cond(&cx) {
                    return vec![];
                }
                cx.instantiate(p)
            }
            Rhs::Build(b) => b(&mut cx),
        };
        let Some(new) = new else { return vec![] };
        // A rule never equates arrays of different shapes or dtypes, nor adds one it cannot type.
        let (have, got) = (&egraph[eclass].data.values, &egraph[new].data.values);
        if got.is_empty() || (!have.is_empty() && have != got) {
            return vec![];
        }
        if egraph.union(eclass, new) {
            egraph.analysis.unions.push((eclass, new, self.0.name.clone()));
            vec![new]
        } else {
            vec![]
        }
    }
}

/// A match being rewritten: the e-graph, the bindings, and helpers to read and add.
pub struct Ctx<'a> {
    pub g: &'a mut EGraph,
    pub subst: &'a Subst,
    pub rule: &'a str,
    /// The matched e-class.
    pub class: Id,
}

impl Ctx<'_> {
    pub fn id(&self, var: &str) -> Id {
        let v: Var = var.parse().expect("a ?variable");
        self.g.find(self.subst[v])
    }

    /// Whether the rule's pattern binds `var` (rules sharing one builder differ by their variables).
    pub fn bound(&self, var: &str) -> bool {
        var.parse::<Var>().ok().and_then(|v| self.subst.get(v)).is_some()
    }

    pub fn data(&self, var: &str) -> &Data {
        &self.g[self.id(var)].data
    }

    /// The matched class's data.
    pub fn out(&self) -> &Data {
        &self.g[self.class].data
    }

    pub fn value(&self, var: &str) -> Option<&Value> {
        self.data(var).value()
    }

    pub fn shape(&self, var: &str) -> Option<&[i64]> {
        self.value(var).map(|v| v.shape.as_slice())
    }

    pub fn rank(&self, var: &str) -> Option<usize> {
        self.shape(var).map(<[i64]>::len)
    }

    pub fn args(&self, var: &str) -> Option<&[Arg]> {
        crate::egraph::lang::args_of(self.g, self.id(var))
    }

    /// Integer list argument `i` at the traced sizes (symbolic dims evaluated).
    pub fn traced_list(&self, args: &[Arg], i: usize) -> Option<Vec<i64>> {
        let shapes = self.g.analysis.tables.reference_shapes();
        args.get(i)?.list()?.iter().map(|a| a.int()?.eval(&shapes)).collect()
    }

    /// The value every element of `var` has, if it is a constant fill.
    pub fn scalar(&self, var: &str) -> Option<f64> {
        self.data(var).scalar
    }

    /// The value every element of `var` has: a constant fill, or a table that depends on
    /// no input (`sqrt(64)`, folded in float64, rounded to `var`'s dtype) whose elements are
    /// all equal.
    pub fn folded_scalar(&self, var: &str) -> Option<f64> {
        self.scalar(var).or_else(|| {
            let t = crate::egraph::fold::fold(self.g, self.id(var))?;
            let first = *t.data.first()?;
            let dtype = self.value(var)?.dtype;
            t.data.iter().all(|v| *v == first).then(|| crate::egraph::convert::round_to(first, dtype))
        })
    }

    /// The shape of the existing node `op(vars...)`, if the e-graph has it.
    pub fn lookup(&self, op: Op, vars: &[&str]) -> Option<Vec<i64>> {
        let node = Mlx::Op(op, vars.iter().map(|v| self.id(v)).collect());
        let id = self.g.lookup(node)?;
        Some(self.g[id].data.value()?.shape.clone())
    }

    /// Adds `op(args, inputs)`, noting this rule as the origin of a node that is new.
    pub fn op(&mut self, op: Op, args: &[Arg], inputs: &[Id]) -> Id {
        let mut children = vec![];
        if !args.is_empty() {
            children.push(add_args(self.g, args));
        }
        children.extend_from_slice(inputs);
        self.add(Mlx::Op(op, children))
    }

    pub fn add(&mut self, node: Mlx) -> Id {
        if let Some(id) = self.g.lookup(node.clone()) {
            return id;
        }
        let origin = crate::egraph::lang::Origin::Rule(self.rule.to_string());
        self.g.analysis.origins.entry(node.clone()).or_insert(origin);
        self.g.add(node)
    }

    /// A 0-d constant holding `v` (already exact in `dtype`).
    pub fn scalar_const(&mut self, v: f64, dtype: Dtype) -> Id {
        let value = Value { shape: vec![], dtype };
        let entry = crate::egraph::lang::ConstEntry { value, data: ConstData::Scalar { expr: ScalarExpr::Lit { v } } };
        let i = self.g.analysis.tables.intern_const(entry, Some(v));
        self.add(Mlx::Const(i))
    }

    fn instantiate(&mut self, p: &Pattern<Mlx>) -> Option<Id> {
        let mut ids: Vec<Id> = vec![];
        for n in p.ast.as_ref() {
            let id = match n {
                ENodeOrVar::Var(v) => self.g.find(*self.subst.get(*v)?),
                ENodeOrVar::ENode(e) => {
                    let e = egg::Language::map_children(e.clone(), |c| ids[usize::from(c)]);
                    self.add(e)
                }
            };
            ids.push(id);
        }
        ids.last().copied()
    }
}

/// The arguments and array inputs of an e-node.
pub fn node_parts<'a>(g: &'a EGraph, node: &'a Mlx) -> (&'a [Arg], &'a [Id]) {
    split_args(g, egg::Language::children(node))
}

/// Integer list argument `i`, if every entry is a constant.
pub fn const_list(args: &[Arg], i: usize) -> Option<Vec<i64>> {
    args.get(i)?.list()?.iter().map(|a| a.int().and_then(superopt_ir::Dim::as_const)).collect()
}

/// Integer argument `i`, if constant.
pub fn const_int(args: &[Arg], i: usize) -> Option<i64> {
    args.get(i)?.int()?.as_const()
}

/// Whether `a` and `b` are equal as f32 values (rounded constants compare alike).
pub fn same_f32(a: f64, b: f64) -> bool {
    (a as f32) == (b as f32)
}

#[cfg(test)]
pub(crate) mod testing;
