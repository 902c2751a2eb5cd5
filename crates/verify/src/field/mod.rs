//! The exact check: both programs evaluated over a finite field on random inputs.
//!
//! Values live in Z_P x Z_Q (see [`arith`]): sums, products, quotients, matmuls,
//! layout changes, gathers by input-independent indices and masks built from
//! `arange` comparisons are exact there, and exp is a homomorphism, so rewrites such
//! as softmax's max subtraction or sigmoid written through exp are checked exactly.
//! Other non-polynomial primitives (sqrt, max, erf, comparisons of inputs...) are
//! uninterpreted functions applied alike to both programs.
//!
//! What it proves: if the outputs agree on `k` random inputs, the programs are equal
//! as functions built from the interpreted primitives, except with probability at
//! most `(d / 2^31)^k` (Schwartz-Zippel), `d` a bound on the degree. What it leaves to
//! the float check: anything that holds only through properties of the uninterpreted
//! functions (`rsqrt(x) = 1 / sqrt(x)`), and float rounding. A disagreement is
//! conclusive only when neither program used an uninterpreted function.

pub mod arith;
pub mod eval;
mod kernel;
mod quantized;
mod scan;
mod solve;

pub use solve::solve_form;

use arith::{Elem, P};
use eval::{Interp, Tensor};
use serde::Serialize;
use superopt_ir::{Op, Program};

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum FieldVerdict {
    /// Every output agreed on every trial.
    Proved { trials: usize, degree: u64, error_bound: f64 },
    /// Output `output` differs; `conclusive` when no uninterpreted function was involved.
    Differs { output: usize, conclusive: bool },
    /// A primitive the field cannot interpret, or a mismatch of signatures.
    Unfit { why: String },
    /// Not run, for `why`.
    Skipped { why: String },
}

#[derive(Clone, Debug, Serialize)]
pub struct FieldReport {
    #[serde(flatten)]
    pub verdict: FieldVerdict,
    /// Primitives evaluated as uninterpreted functions.
    pub uninterpreted: Vec<String>,
    pub seconds: f64,
}

impl FieldReport {
    /// One line for tables: "proved (...)", "differs (...)", "not applicable: ...".
    pub fn summary(&self) -> String {
        let ufs = if self.uninterpreted.is_empty() {
            String::new()
        } else {
            format!("; uninterpreted: {}", self.uninterpreted.join(", "))
        };
        match &self.verdict {
            FieldVerdict::Proved { trials, degree, error_bound } => {
                let how = format!("degree <= {degree}, error <= {error_bound:.1e}");
                format!("proved equal on {trials} random field inputs ({how}){ufs}")
            }
            FieldVerdict::Differs { output, conclusive: true } => {
                format!("output {output} DIFFERS on random field inputs")
            }
            FieldVerdict::Differs { output, conclusive: false } => {
                format!(
                    "not proved: output {output} differs modulo uninterpreted functions (left to the float check){ufs}"
                )
            }
            FieldVerdict::Unfit { why } => format!("not applicable: {why}"),
            FieldVerdict::Skipped { why } => format!("not run: {why}"),
        }
    }

    /// A check not run, for `why`.
    pub fn skipped(why: &str) -> FieldReport {
        FieldReport { verdict: FieldVerdict::Skipped { why: why.into() }, uninterpreted: vec![], seconds: 0.0 }
    }

    /// A conclusive disagreement: the candidate computes another function.
    pub fn refutes(&self) -> bool {
        matches!(self.verdict, FieldVerdict::Differs { conclusive: true, .. })
    }
}

/// Random inputs: field elements for floats, small integers otherwise.
fn sample(types: &[(Vec<i64>, superopt_ir::Dtype)], trial: u64) -> Vec<Tensor> {
    types
        .iter()
        .enumerate()
        .map(|(k, (shape, dtype))| eval::random_tensor(shape, *dtype, &format!("input {k} trial {trial}")))
        .collect()
}

fn same_signature(a: &Program, b: &Program) -> Result<(), String> {
    let types = |p: &Program| -> Vec<(usize, superopt_ir::Dtype)> {
        p.inputs.iter().map(|i| (p.value(*i).shape.len(), p.value(*i).dtype)).collect()
    };
    if types(a) != types(b) {
        return Err("the programs take different inputs".into());
    }
    if a.outputs.len() != b.outputs.len() {
        return Err("the programs return different numbers of outputs".into());
    }
    Ok(())
}

/// A bound on the degree of the outputs, counting each uninterpreted result and
/// each exp as a fresh variable: sums keep the degree, products and quotients
/// add degrees, a product over n terms multiplies it by n.
fn degree(p: &Program) -> u64 {
    let quantized_kernel = |n: &superopt_ir::Node| {
        superopt_kernel::Call::of_node(n).is_some_and(|c| matches!(c.body, superopt_kernel::Body::Quantized(_)))
    };
    let solve_size = |n: &superopt_ir::Node| match superopt_kernel::Call::of_node(n).map(|c| c.body) {
        Some(superopt_kernel::Body::Solve(s)) => Some((s.n - 1).max(1) as u64),
        _ => None,
    };
    let mut d = vec![0u64; p.values.len()];
    for i in &p.inputs {
        d[*i] = 1;
    }
    let cap = 1u64 << 40;
    for n in &p.nodes {
        let ins: Vec<u64> = n.inputs.iter().map(|i| d[*i]).collect();
        let max = ins.iter().copied().max().unwrap_or(0);
        let sum = ins.iter().sum::<u64>().min(cap);
        let v = match n.op {
            Op::Multiply | Op::Divide | Op::Matmul | Op::AddMM => sum,
            // x times weights that hold one uninterpreted term each.
            Op::GatherQMM | Op::QuantizedMatmul => (sum + 1).min(cap),
            // gate * sigmoid(gate) * up, each product as above.
            Op::Kernel if quantized_kernel(n) => (2 * (max + 1) + 2).min(cap),
            // A solve's entries: products of up to N - 1 of its input's.
            Op::Kernel if let Some(size) = solve_size(n) => max.saturating_mul(size).min(cap),
            // A recurrence: its step's degrees, step after step.
            Op::Kernel if let Some(s) = scan_of(n) => scan_degree(&s, &ins, cap),
            // A layout change: the degree of what it places.
            Op::Scatter => max,
            Op::Square => (2 * max).min(cap),
            Op::Reduce if matches!(n.args.first().and_then(|a| a.int()).and_then(|d| d.as_const()), Some(3)) => {
                max.saturating_mul(p.value(n.inputs[0]).numel().max(1) as u64).min(cap)
            }
            // e_i / sum_j e_j and 1 / (1 + e): rational of degree 2 in the fresh e's.
            Op::Softmax | Op::Sigmoid | Op::Tanh => 2,
            Op::Exp => 1,
            op if is_exact(op) => max,
            _ => 1,
        };
        for o in &n.outputs {
            d[*o] = v;
        }
    }
    p.outputs.iter().map(|o| d[*o]).max().unwrap_or(1).max(1)
}

fn scan_of(n: &superopt_ir::Node) -> Option<superopt_kernel::scan::Scan> {
    match superopt_kernel::Call::of_node(n)?.body {
        superopt_kernel::Body::Scan(s) => Some(s),
        _ => None,
    }
}

/// The highest degree a recurrence's outputs reach over its steps, from its operands'
/// degrees `ins`, by the rules of [`degree`].
fn scan_degree(s: &superopt_kernel::scan::Scan, ins: &[u64], cap: u64) -> u64 {
    use superopt_kernel::{Binary, Op as K, Unary};
    let mut state = ins.first().copied().unwrap_or(1);
    let mut top = state;
    for _ in 0..s.steps {
        let mut d: Vec<u64> = Vec::with_capacity(s.insts.len());
        for inst in &s.insts {
            let a = |i: usize| d[inst.args[i]];
            let v = match inst.op {
                K::Input(0) => state,
                K::Input(j) => ins.get(j).copied().unwrap_or(1),
                K::Const(_) | K::Len => 0,
                K::Binary(Binary::Mul | Binary::Div) => a(0).saturating_add(a(1)).min(cap),
                K::Binary(Binary::Add | Binary::Sub) | K::Select | K::Cast(_) => {
                    inst.args.iter().map(|i| d[*i]).max().unwrap_or(0)
                }
                K::Reduce(superopt_kernel::Reduce::Sum) => a(0),
                K::Unary(Unary::Neg) => a(0),
                K::Unary(Unary::Square) => (2 * a(0)).min(cap),
                K::Unary(Unary::Sigmoid | Unary::Tanh) => 2,
                _ => 1,
            };
            d.push(v);
        }
        state = d[s.next];
        top = top.max(state).max(s.outputs.iter().map(|o| d[o.value]).max().unwrap_or(0));
        if top >= cap {
            return cap;
        }
    }
    top.max(1)
}

fn is_exact(op: Op) -> bool {
    matches!(
        op,
        Op::Add
            | Op::Subtract
            | Op::Negative
            | Op::Reduce
            | Op::Broadcast
            | Op::Reshape
            | Op::Transpose
            | Op::Slice
            | Op::Concatenate
            | Op::Split
            | Op::ExpandDims
            | Op::Squeeze
            | Op::Flatten
            | Op::Unflatten
            | Op::Select
            | Op::AsType
            | Op::Copy
            | Op::StopGradient
            | Op::Full
            | Op::GatherAxis
    )
}

/// Checks `candidate` against `original` on `trials` random field inputs of the
/// given shapes and dtypes (the programs' symbolic sizes follow them).
pub fn check(
    original: &Program,
    candidate: &Program,
    inputs: &[(Vec<i64>, superopt_ir::Dtype)],
    trials: usize,
) -> FieldReport {
    let start = std::time::Instant::now();
    let mut interp = Interp::default();
    let run = std::panic::AssertUnwindSafe(|| compare(&mut interp, original, candidate, inputs, trials));
    // A bug in the interpreter must not end the run: report "not applicable", quietly.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(run);
    std::panic::set_hook(hook);
    let verdict =
        result.unwrap_or_else(|_| FieldVerdict::Unfit { why: "the interpreter failed on this program".into() });
    FieldReport { verdict, uninterpreted: interp.uninterpreted, seconds: start.elapsed().as_secs_f64() }
}

/// Why the programs' constant arrays make the check unsound, if they do: each array gets
/// random values drawn from its content key, which stand for any values only where both
/// programs hold it (a candidate's hoisted zeros are not the original's `Full`).
fn unshared_arrays(a: &Program, b: &Program) -> Option<String> {
    let keys = |p: &Program| p.tensor_keys().map(String::from).collect::<std::collections::BTreeSet<String>>();
    (keys(a) != keys(b)).then(|| "a constant array only one program holds (its values are unknown here)".into())
}

/// Field operations one run of `p` takes, roughly, at its traced shapes.
pub fn work(p: &Program) -> f64 {
    p.nodes
        .iter()
        .map(|n| {
            let out: f64 = n.outputs.iter().map(|o| p.value(*o).numel() as f64).sum();
            match n.op {
                Op::Matmul => {
                    out * n.inputs.first().and_then(|i| p.value(*i).shape.last()).copied().unwrap_or(1) as f64
                }
                _ => out,
            }
        })
        .sum()
}

/// Beyond this many field operations per program the check would cost seconds; it is skipped.
pub const MAX_WORK: f64 = 5e7;

fn compare(
    interp: &mut Interp,
    original: &Program,
    candidate: &Program,
    inputs: &[(Vec<i64>, superopt_ir::Dtype)],
    trials: usize,
) -> FieldVerdict {
    {
        if let Err(why) = same_signature(original, candidate) {
            return FieldVerdict::Unfit { why };
        }
        if let Some(why) = unshared_arrays(original, candidate) {
            return FieldVerdict::Unfit { why };
        }
        let w = work(original).max(work(candidate));
        if w > MAX_WORK {
            return FieldVerdict::Unfit {
                why: format!("too large for the field check (~{w:.0e} operations), left to the float check"),
            };
        }
        for t in 0..trials {
            let inputs = sample(inputs, t as u64);
            let (a, b) = match (interp.run(original, &inputs), interp.run(candidate, &inputs)) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(why), _) | (_, Err(why)) => return FieldVerdict::Unfit { why },
            };
            for (k, (x, y)) in a.iter().zip(&b).enumerate() {
                let same_values = |u: &[Elem], v: &[Elem]| u.iter().map(|e| e.q()).eq(v.iter().map(|e| e.q()));
                let same =
                    x.shape == y.shape && matches!((x.field(), y.field()), (Ok(u), Ok(v)) if same_values(&u, &v));
                if !same {
                    return FieldVerdict::Differs { output: k, conclusive: interp.uninterpreted.is_empty() };
                }
            }
        }
        let d = degree(original).max(degree(candidate));
        FieldVerdict::Proved { trials, degree: d, error_bound: (d as f64 / P as f64).min(1.0).powi(trials as i32) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use superopt_ir::{Arg, ConstData, Constant, Dim, Dtype, Node, OutputKind, ScalarExpr, Signature, Value};

    /// A program over one float input of shape `shape`; `nodes` are (op, args, inputs),
    /// each defining the next value; `consts` are scalar constants defined first.
    fn program(shape: &[i64], consts: &[f64], nodes: &[(&str, Vec<Arg>, Vec<usize>)]) -> Program {
        let f = Dtype::Float32;
        let mut values = vec![Value { shape: shape.to_vec(), dtype: f }];
        let mut constants = vec![];
        for c in consts {
            constants
                .push(Constant { value: values.len(), data: ConstData::Scalar { expr: ScalarExpr::Lit { v: *c } } });
            values.push(Value { shape: vec![], dtype: f });
        }
        let mut ns = vec![];
        for (op, args, inputs) in nodes {
            let op = Op::parse(op).expect("a known primitive");
            let out_shape = if op == Op::Reduce {
                let mut s = shape.to_vec();
                *s.last_mut().unwrap() = 1;
                s
            } else {
                shape.to_vec()
            };
            ns.push(Node { op, args: args.clone(), inputs: inputs.clone(), outputs: vec![values.len()] });
            values.push(Value { shape: out_shape, dtype: f });
        }
        let last = values.len() - 1;
        Program {
            values,
            inputs: vec![0],
            constants,
            nodes: ns,
            outputs: vec![last],
            signature: Signature::returning(OutputKind::Array),
        }
    }

    fn types(p: &Program) -> Vec<(Vec<i64>, Dtype)> {
        p.inputs.iter().map(|i| (p.value(*i).shape.clone(), p.value(*i).dtype)).collect()
    }

    fn axes(a: &[i64]) -> Arg {
        Arg::List(a.iter().map(|x| Arg::Int(Dim::constant(*x))).collect())
    }

    fn sum_last() -> Vec<Arg> {
        vec![Arg::Int(Dim::constant(2)), axes(&[1])]
    }

    fn max_last() -> Vec<Arg> {
        vec![Arg::Int(Dim::constant(5)), axes(&[1])]
    }

    /// e = exp(x - max(x)); e / sum(e), over rows of 4.
    fn softmax_by_hand() -> Program {
        program(
            &[3, 4],
            &[],
            &[
                ("Reduce", max_last(), vec![0]),
                ("Subtract", vec![], vec![0, 1]),
                ("Exp", vec![], vec![2]),
                ("Reduce", sum_last(), vec![3]),
                ("Divide", vec![], vec![3, 4]),
            ],
        )
    }

    #[test]
    fn sigmoid_through_exp_is_proved() {
        // exp(x) / (1 + exp(x))  vs  sigmoid(x)
        let by_hand = program(
            &[3, 4],
            &[1.0],
            &[("Exp", vec![], vec![0]), ("Add", vec![], vec![1, 2]), ("Divide", vec![], vec![2, 3])],
        );
        let fast = program(&[3, 4], &[1.0], &[("Sigmoid", vec![], vec![0])]);
        let r = check(&by_hand, &fast, &types(&by_hand), 2);
        assert!(matches!(r.verdict, FieldVerdict::Proved { .. }), "{}", r.summary());
    }

    #[test]
    fn softmax_max_subtraction_is_proved_through_the_exp_homomorphism() {
        let by_hand = softmax_by_hand();
        let fast = program(&[3, 4], &[], &[("Softmax", vec![Arg::Bool(false)], vec![0])]);
        let r = check(&by_hand, &fast, &types(&by_hand), 2);
        assert!(matches!(r.verdict, FieldVerdict::Proved { .. }), "{}", r.summary());
        assert!(r.uninterpreted.iter().any(|u| u.contains("max")), "max stays uninterpreted: {:?}", r.uninterpreted);
    }

    #[test]
    fn a_changed_constant_is_a_conclusive_difference() {
        let a = program(&[2, 2], &[1e-5], &[("Add", vec![], vec![0, 1]), ("Multiply", vec![], vec![2, 0])]);
        let b = program(&[2, 2], &[1e-6], &[("Add", vec![], vec![0, 1]), ("Multiply", vec![], vec![2, 0])]);
        let r = check(&a, &b, &types(&a), 2);
        assert!(r.refutes(), "{}", r.summary());
    }

    /// `x + c` where `c` is an array constant of `x`'s shape held by content key `key`.
    fn plus_array(key: &str) -> Program {
        let mut p = program(&[2, 2], &[], &[]);
        p.values.push(Value { shape: vec![2, 2], dtype: Dtype::Float32 });
        p.constants.push(Constant { value: 1, data: ConstData::Tensor { key: key.into() } });
        p.values.push(Value { shape: vec![2, 2], dtype: Dtype::Float32 });
        p.nodes.push(Node { op: Op::Add, args: vec![], inputs: vec![0, 1], outputs: vec![2] });
        p.outputs = vec![2];
        p
    }

    #[test]
    fn an_array_only_one_program_holds_is_left_to_the_float_check() {
        // A candidate that hoisted zeros into an array is not refuted for it: the field
        // check does not know an array's values.
        let zeros = program(&[2, 2], &[0.0], &[("Add", vec![], vec![0, 1])]);
        let r = check(&zeros, &plus_array("zeros"), &types(&zeros), 2);
        assert!(matches!(r.verdict, FieldVerdict::Unfit { .. }), "{}", r.summary());
        // Where both hold it, it stands for any values alike: a changed program is refuted.
        let doubled = {
            let mut p = plus_array("w");
            p.values.push(Value { shape: vec![2, 2], dtype: Dtype::Float32 });
            p.nodes.push(Node { op: Op::Add, args: vec![], inputs: vec![2, 2], outputs: vec![3] });
            p.outputs = vec![3];
            p
        };
        let r = check(&plus_array("w"), &doubled, &types(&zeros), 2);
        assert!(r.refutes(), "{}", r.summary());
    }

    #[test]
    fn reassociation_and_factored_scales_are_proved() {
        // (x * 0.5) * 0.25  vs  x * 0.125
        let a = program(&[2, 3], &[0.5, 0.25], &[("Multiply", vec![], vec![0, 1]), ("Multiply", vec![], vec![3, 2])]);
        let b = program(&[2, 3], &[0.125], &[("Multiply", vec![], vec![0, 1])]);
        assert!(matches!(check(&a, &b, &types(&a), 2).verdict, FieldVerdict::Proved { .. }));
    }

    #[test]
    fn differences_through_uninterpreted_functions_are_not_conclusive() {
        // rsqrt(x)  vs  1 / sqrt(x): equal in the reals, not provable here.
        let a = program(&[4], &[], &[("Sqrt", vec![Arg::Bool(true)], vec![0])]);
        let b = program(&[4], &[1.0], &[("Sqrt", vec![Arg::Bool(false)], vec![0]), ("Divide", vec![], vec![1, 2])]);
        let r = check(&a, &b, &types(&a), 2);
        assert!(matches!(r.verdict, FieldVerdict::Differs { conclusive: false, .. }), "{}", r.summary());
        assert!(!r.refutes());
    }

    /// `p` with its nodes replaced by one `Kernel` node computing `k` from the input.
    fn as_kernel(p: &Program, k: superopt_kernel::Kernel) -> Program {
        let mut q = p.clone();
        let call = superopt_kernel::Call {
            body: superopt_kernel::Body::Rows(k),
            target: superopt_kernel::Target::Cuda,
            tuned: vec![],
        };
        q.nodes = vec![Node { op: Op::Kernel, args: vec![call.to_arg()], inputs: vec![0], outputs: p.outputs.clone() }];
        q.constants.clear();
        q
    }

    #[test]
    fn a_softmax_kernel_is_proved_and_a_wrong_one_refuted() {
        use superopt_kernel::{library, Binary, Builder, Form, Layout, Reduce, Unary};
        let by_hand = softmax_by_hand();
        let kernel = as_kernel(&by_hand, library::softmax_kernel(Dtype::Float32).unwrap());
        let r = check(&by_hand, &kernel, &types(&by_hand), 2);
        assert!(matches!(r.verdict, FieldVerdict::Proved { .. }), "{}", r.summary());
        // The same kernel dividing by the row's sum of x instead of exp(x - max).
        let mut b = Builder::new("softmax", Form::Rows);
        let x = b.input("x", Layout::Full);
        let m = b.reduce(Reduce::Max, x);
        let d = b.binary(Binary::Sub, x, m);
        let e = b.unary(Unary::Exp, d);
        let s = b.reduce(Reduce::Sum, x);
        let y = b.binary(Binary::Div, e, s);
        b.output("out", Layout::Full, Dtype::Float32, y);
        let wrong = as_kernel(&by_hand, b.finish().unwrap());
        let r = check(&by_hand, &wrong, &types(&by_hand), 2);
        assert!(!matches!(r.verdict, FieldVerdict::Proved { .. }), "{}", r.summary());
    }

    #[test]
    fn an_elementwise_kernel_with_a_wrong_constant_is_refuted() {
        use superopt_kernel::{Binary, Builder, Form, Layout, Unary};
        let kernel = |c: f64| {
            let mut b = Builder::new("k", Form::Elementwise);
            let x = b.input("x", Layout::Full);
            let e = b.unary(Unary::Exp, x);
            let k = b.constant(c);
            let y = b.binary(Binary::Mul, e, k);
            b.output("out", Layout::Full, Dtype::Float32, y);
            b.finish().unwrap()
        };
        let by_hand = program(&[2, 3], &[2.0], &[("Exp", vec![], vec![0]), ("Multiply", vec![], vec![2, 1])]);
        let right = check(&by_hand, &as_kernel(&by_hand, kernel(2.0)), &types(&by_hand), 2);
        assert!(matches!(right.verdict, FieldVerdict::Proved { .. }), "{}", right.summary());
        let wrong = check(&by_hand, &as_kernel(&by_hand, kernel(3.0)), &types(&by_hand), 2);
        assert!(wrong.refutes(), "{}", wrong.summary());
    }

    /// `silu(x Wg^T) * (x Wu^T)` with 4-bit dense weights (K 64, N 16, one group per row).
    fn quantized_swiglu() -> Program {
        let (f, u) = (Dtype::Float32, Dtype::Uint32);
        let mut values = vec![Value { shape: vec![2, 64], dtype: f }];
        let mut constants = vec![];
        for (key, shape, dtype) in [("wg", [16, 8], u), ("sg", [16, 1], f), ("bg", [16, 1], f)].into_iter().chain([
            ("wu", [16, 8], u),
            ("su", [16, 1], f),
            ("bu", [16, 1], f),
        ]) {
            constants.push(Constant { value: values.len(), data: ConstData::Tensor { key: key.into() } });
            values.push(Value { shape: shape.to_vec(), dtype });
        }
        let qmm =
            vec![Arg::Int(Dim::constant(64)), Arg::Int(Dim::constant(4)), Arg::Int(Dim::constant(0)), Arg::Bool(true)];
        let nodes = [
            (Op::QuantizedMatmul, qmm.clone(), vec![0, 1, 2, 3]),
            (Op::QuantizedMatmul, qmm, vec![0, 4, 5, 6]),
            (Op::Sigmoid, vec![], vec![7]),
            (Op::Multiply, vec![], vec![7, 9]),
            (Op::Multiply, vec![], vec![10, 8]),
        ];
        let mut ns = vec![];
        for (op, args, inputs) in nodes {
            ns.push(Node { op, args, inputs, outputs: vec![values.len()] });
            values.push(Value { shape: vec![2, 16], dtype: f });
        }
        let signature = Signature::returning(OutputKind::Array);
        Program { values, inputs: vec![0], constants, nodes: ns, outputs: vec![11], signature }
    }

    #[test]
    fn a_quantized_swiglu_kernel_is_proved_and_one_with_gate_and_up_swapped_is_not() {
        let by_hand = quantized_swiglu();
        let mut kernel = by_hand.clone();
        let lines = superopt_kernel::quantized::lower::lower(&mut kernel, superopt_kernel::Target::Cuda);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(kernel.nodes.len(), 1);
        let r = check(&by_hand, &kernel, &types(&by_hand), 2);
        assert!(matches!(r.verdict, FieldVerdict::Proved { .. }), "{}", r.summary());
        let mut swapped = kernel.clone();
        swapped.nodes[0].inputs = vec![0, 4, 5, 6, 1, 2, 3];
        let r = check(&by_hand, &swapped, &types(&by_hand), 2);
        assert!(!matches!(r.verdict, FieldVerdict::Proved { .. }), "{}", r.summary());
    }

    /// Two tokens' top-2 experts (of 4, 4-bit, K 64, N 16): `sum_k wt[t, k] * (x[t] W[e]^T)`
    /// as a trace spells it (GatherQMM, Squeeze, ExpandDims, Broadcast, Multiply, Reduce).
    fn quantized_combine() -> Program {
        let (f, u) = (Dtype::Float32, Dtype::Uint32);
        let list = |xs: &[i64]| Arg::List(xs.iter().map(|x| Arg::Int(Dim::constant(*x))).collect());
        let int = |x: i64| Arg::Int(Dim::constant(x));
        let range = |n: f64| vec![Arg::Float(0.0), Arg::Float(n), Arg::Float(1.0)];
        let mut values = vec![Value { shape: vec![2, 1, 64], dtype: f }, Value { shape: vec![2, 2], dtype: f }];
        let mut constants = vec![];
        for (key, shape, dtype) in [("w", [4, 16, 8], u), ("s", [4, 16, 1], f), ("b", [4, 16, 1], f)] {
            constants.push(Constant { value: values.len(), data: ConstData::Tensor { key: key.into() } });
            values.push(Value { shape: shape.to_vec(), dtype });
        }
        let qmm = vec![int(64), int(4), int(0), Arg::Bool(true), Arg::Bool(false), Arg::Bool(false)];
        type Made = (Op, Vec<Arg>, Vec<usize>, Vec<i64>, Dtype);
        let nodes: [Made; 10] = [
            (Op::Arange, range(2.0), vec![], vec![2], u),                          // 5
            (Op::Reshape, vec![list(&[2, 1])], vec![5], vec![2, 1], u),            // 6
            (Op::Broadcast, vec![list(&[2, 2])], vec![6], vec![2, 2], u),          // 7: lhs
            (Op::Arange, range(4.0), vec![], vec![4], u),                          // 8
            (Op::Reshape, vec![list(&[2, 2])], vec![8], vec![2, 2], u),            // 9: rhs
            (Op::GatherQMM, qmm, vec![0, 2, 3, 4, 7, 9], vec![2, 2, 1, 16], f),    // 10
            (Op::Squeeze, vec![list(&[2])], vec![10], vec![2, 2, 16], f),          // 11
            (Op::ExpandDims, vec![list(&[2])], vec![1], vec![2, 2, 1], f),         // 12
            (Op::Broadcast, vec![list(&[2, 2, 16])], vec![12], vec![2, 2, 16], f), // 13
            (Op::Multiply, vec![], vec![11, 13], vec![2, 2, 16], f),               // 14
        ];
        let mut ns = vec![];
        for (op, args, inputs, shape, dtype) in nodes {
            ns.push(Node { op, args, inputs, outputs: vec![values.len()] });
            values.push(Value { shape, dtype });
        }
        ns.push(Node { op: Op::Reduce, args: vec![int(2), list(&[1])], inputs: vec![14], outputs: vec![values.len()] });
        values.push(Value { shape: vec![2, 1, 16], dtype: f });
        let signature = Signature::returning(OutputKind::Array);
        Program { values, inputs: vec![0, 1], constants, nodes: ns, outputs: vec![15], signature }
    }

    #[test]
    fn a_quantized_combine_kernel_is_proved_and_one_on_other_experts_is_not() {
        let by_hand = quantized_combine();
        let mut kernel = by_hand.clone();
        let lines = superopt_kernel::quantized::lower::lower(&mut kernel, superopt_kernel::Target::Cuda);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("the top-k pairs of gather_qmm"), "{lines:?}");
        let r = check(&by_hand, &kernel, &types(&by_hand), 2);
        assert!(matches!(r.verdict, FieldVerdict::Proved { .. }), "{}", r.summary());
        // The combine with each token's experts taken from lhs (0 0, 1 1) instead of rhs.
        let mut other = kernel.clone();
        let k = other.nodes.iter().position(|n| n.op == Op::Kernel).unwrap();
        other.nodes[k].inputs[2] = other.nodes[k].inputs[1];
        let r = check(&by_hand, &other, &types(&by_hand), 2);
        assert!(!matches!(r.verdict, FieldVerdict::Proved { .. }), "{}", r.summary());
    }

    /// Weights broadcast over one more axis than the pairs' (`[3] + P + [N]`): the sum is no
    /// combine, and nothing is lowered but the product.
    #[test]
    fn weights_broadcast_over_another_axis_are_no_combine() {
        let mut p = quantized_combine();
        for v in [13, 14] {
            p.values[v].shape = vec![3, 2, 2, 16];
        }
        p.nodes[8].args = vec![Arg::List([3, 2, 2, 16].iter().map(|x| Arg::Int(Dim::constant(*x))).collect())];
        p.values[15].shape = vec![3, 1, 2, 16];
        let lines = superopt_kernel::quantized::lower::lower(&mut p, superopt_kernel::Target::Cuda);
        assert!(lines.iter().all(|l| !l.contains("top-k")), "{lines:?}");
        assert_eq!(lines.len(), 1, "the product alone: {lines:?}");
    }

    #[test]
    fn wrong_reduction_axis_on_a_square_is_refuted() {
        let a = program(
            &[3, 3],
            &[],
            &[
                ("Reduce", sum_last(), vec![0]),
                ("Broadcast", vec![axes(&[3, 3])], vec![1]),
                ("Add", vec![], vec![0, 2]),
            ],
        );
        let mut b = a.clone();
        b.nodes[0].args = vec![Arg::Int(Dim::constant(2)), axes(&[0])];
        b.values[1].shape = vec![1, 3];
        let r = check(&a, &b, &types(&a), 2);
        assert!(r.refutes(), "{}", r.summary());
    }
}
