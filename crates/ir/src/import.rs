//! Importer: the worker's record of `mx.export_function`'s callback -> [`Program`].

use crate::program::*;
use crate::{Dim, Dtype, Op};
use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::HashMap;
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum ImportError {
    #[error("unsupported primitive {0}")]
    Unsupported(String),
    #[error("malformed trace: {0}")]
    Malformed(String),
}

/// `(name, shape, dtype)` as the export callback names an array.
pub type ArrayRef = (String, Vec<i64>, String);

#[derive(Debug, Deserialize)]
pub struct TraceConstant {
    pub name: String,
    pub shape: Vec<i64>,
    pub dtype: String,
    /// The value of a 0-d constant.
    #[serde(default)]
    pub scalar: Option<Json>,
    /// The content hash of an array constant.
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct TraceNode {
    pub op: String,
    pub args: Vec<Json>,
    pub inputs: Vec<ArrayRef>,
    pub outputs: Vec<ArrayRef>,
}

#[derive(Debug, Deserialize)]
pub struct TraceParam {
    pub name: String,
    pub kind: String,
    /// The export's name for an array parameter.
    #[serde(default)]
    pub array: Option<String>,
    #[serde(default)]
    pub value: Json,
    #[serde(default)]
    pub keyword: bool,
}

/// What the worker reports for one trace.
#[derive(Debug, Deserialize)]
pub struct TraceEvents {
    pub params: Vec<TraceParam>,
    pub output_kind: OutputKind,
    pub inputs: Vec<ArrayRef>,
    pub outputs: Vec<ArrayRef>,
    pub constants: Vec<TraceConstant>,
    pub nodes: Vec<TraceNode>,
    /// How far two calls of `fn` on the same inputs were apart (relative L2, the largest over
    /// its outputs) where they differed in rounding only; None where bit-identical.
    #[serde(default)]
    pub varies: Option<f64>,
    /// Array inputs (by input number) that the call updated in place.
    #[serde(default)]
    pub updated: Vec<usize>,
    /// fn's declared parameters (empty where it takes `*args` or `**kwargs`).
    #[serde(default)]
    pub fn_params: Vec<crate::FnParam>,
    /// Array inputs (by input number) whose values when the call returned follow its outputs
    /// in `outputs`, one each in this order (those it updated in place).
    #[serde(default)]
    pub written: Vec<usize>,
}

struct Builder {
    program: Program,
    ids: HashMap<String, ValueId>,
}

impl Builder {
    fn define(&mut self, (name, shape, dtype): &ArrayRef) -> Result<ValueId, ImportError> {
        let dtype = parse_dtype(dtype)?;
        let id = self.program.values.len();
        self.program.values.push(Value { shape: shape.clone(), dtype });
        self.ids.insert(name.clone(), id);
        Ok(id)
    }

    fn lookup(&self, name: &str) -> Result<ValueId, ImportError> {
        self.ids
            .get(name)
            .copied()
            .ok_or_else(|| ImportError::Malformed(format!("array {name} used before it is defined")))
    }
}

fn parse_dtype(s: &str) -> Result<Dtype, ImportError> {
    Dtype::parse(s).ok_or_else(|| ImportError::Malformed(format!("unknown dtype {s}")))
}

/// Builds the program; fails on the first primitive the IR does not know.
pub fn import_trace(t: &TraceEvents) -> Result<Program, ImportError> {
    let mut ops = Vec::with_capacity(t.nodes.len());
    for n in &t.nodes {
        ops.push(Op::parse(&n.op).ok_or_else(|| ImportError::Unsupported(n.op.clone()))?);
    }
    let signature =
        Signature { updated: t.updated.clone(), fn_params: t.fn_params.clone(), ..Signature::returning(t.output_kind) };
    let empty =
        Program { values: vec![], inputs: vec![], constants: vec![], nodes: vec![], outputs: vec![], signature };
    let mut b = Builder { program: empty, ids: HashMap::new() };
    for input in &t.inputs {
        let id = b.define(input)?;
        b.program.inputs.push(id);
    }
    for p in &t.params {
        let param = match (p.kind.as_str(), &p.array) {
            ("array", Some(a)) => {
                let id = b.lookup(a)?;
                let input = b.program.inputs.iter().position(|i| *i == id).expect("inputs are defined above");
                Param::Array { name: p.name.clone(), input, keyword: p.keyword }
            }
            ("literal", _) => Param::Literal { name: p.name.clone(), value: p.value.clone(), keyword: p.keyword },
            _ => return Err(ImportError::Malformed(format!("parameter {} has kind {}", p.name, p.kind))),
        };
        b.program.signature.params.push(param);
    }
    for c in &t.constants {
        let value = b.define(&(c.name.clone(), c.shape.clone(), c.dtype.clone()))?;
        let data = match (&c.scalar, &c.key) {
            (Some(v), _) => ConstData::Scalar { expr: ScalarExpr::Lit { v: json_float(v)? } },
            (None, Some(k)) => ConstData::Tensor { key: k.clone() },
            _ => return Err(ImportError::Malformed(format!("constant {} has no value", c.name))),
        };
        b.program.constants.push(Constant { value, data });
    }
    for (k, n) in t.nodes.iter().enumerate() {
        let inputs = n.inputs.iter().map(|i| b.lookup(&i.0)).collect::<Result<Vec<_>, _>>()?;
        let outputs = n.outputs.iter().map(|o| b.define(o)).collect::<Result<Vec<_>, _>>()?;
        let mut args = n.args.iter().map(parse_arg).collect::<Result<Vec<_>, _>>()?;
        if let (Some(first), Some(input)) = (ops[k].bounds_at(), n.inputs.first()) {
            normalize_bounds(&mut args, first, &input.1)?;
        }
        if ops[k] == Op::Arange {
            // Its dtype is in its output alone: an argument keeps aranges of other dtypes apart.
            args.push(Arg::Dtype(b.program.values[outputs[0]].dtype));
        }
        b.program.nodes.push(Node { op: ops[k], args, inputs, outputs });
    }
    for o in &t.outputs {
        let id = b.lookup(&o.0)?;
        b.program.outputs.push(id);
    }
    if t.written.len() > b.program.outputs.len() {
        return Err(ImportError::Malformed("fewer outputs than inputs written".into()));
    }
    let values = b.program.outputs.split_off(b.program.outputs.len() - t.written.len());
    for (k, v) in t.written.iter().zip(values) {
        if !written_in_place(&b.program, *k, v) {
            b.program.outputs.push(v);
            b.program.signature.written.push(*k);
        }
    }
    Ok(b.program)
}

/// Whether input `k`'s final value `v` is a SliceUpdate of that input alone (`a[i:j] = u`,
/// a KV cache's write), which the emitter writes into the caller's array where it is (see
/// `superopt_emit::ops::in_place`); other updates are the program's values to write whole.
fn written_in_place(p: &Program, k: usize, v: ValueId) -> bool {
    let Some(&input) = p.inputs.get(k) else { return false };
    let made_by = p.nodes.iter().find(|n| n.outputs.contains(&v));
    let readers = p.nodes.iter().filter(|n| n.inputs.contains(&input)).count();
    made_by.is_some_and(|n| n.op == Op::SliceUpdate && n.inputs.first() == Some(&input))
        && readers == 1
        && !p.outputs.contains(&input)
}

/// A slice's starts and stops as Python reads them on `shape`: in `0..=n` for a positive
/// step, in `-1..n` for a negative one, -1 being "before index 0". MLX records a stop as
/// written (`x[:-1]`'s as -1) and a start already shifted by `n` (`x[-10::-1]` on 8 as -2),
/// clipped by neither. Every later reader takes them so.
fn normalize_bounds(args: &mut [Arg], first: usize, shape: &[i64]) -> Result<(), ImportError> {
    let what = format!("slice bounds {args:?} on shape {shape:?}");
    let malformed = || ImportError::Malformed(what.clone());
    let steps = args.get(first + 2).and_then(Arg::const_ints).ok_or_else(malformed)?;
    for which in [first, first + 1] {
        let bounds = args.get(which).and_then(Arg::const_ints).ok_or_else(malformed)?;
        if bounds.len() != shape.len() || steps.len() != shape.len() {
            return Err(malformed());
        }
        let stop = which == first + 1;
        let normal = bounds.iter().zip(shape).zip(&steps).map(|((&b, &n), &step)| {
            let b = if b < 0 && stop { b + n } else { b };
            let (lo, hi) = if step < 0 { (-1, n - 1) } else { (0, n) };
            Arg::Int(Dim::constant(b.clamp(lo, hi)))
        });
        args[which] = Arg::List(normal.collect());
    }
    Ok(())
}

/// Floats come as JSON numbers, or as `{"float": "inf" | "-inf" | "nan"}`.
pub fn json_float(v: &Json) -> Result<f64, ImportError> {
    match v {
        Json::Number(n) => n.as_f64().ok_or_else(|| ImportError::Malformed(format!("bad number {n}"))),
        Json::Bool(b) => Ok(*b as i64 as f64),
        Json::Object(m) => match m.get("float").and_then(Json::as_str) {
            Some("inf") => Ok(f64::INFINITY),
            Some("-inf") => Ok(f64::NEG_INFINITY),
            Some("nan") => Ok(f64::NAN),
            _ => Err(ImportError::Malformed(format!("bad float {v}"))),
        },
        _ => Err(ImportError::Malformed(format!("bad float {v}"))),
    }
}

fn parse_arg(v: &Json) -> Result<Arg, ImportError> {
    Ok(match v {
        Json::Null => Arg::None,
        Json::Bool(b) => Arg::Bool(*b),
        Json::Number(n) if n.is_i64() || n.is_u64() => Arg::Int(Dim::constant(n.as_i64().unwrap_or(i64::MAX))),
        Json::Number(_) => Arg::Float(json_float(v)?),
        Json::String(s) => Arg::Str(s.clone()),
        Json::Array(items) => Arg::List(items.iter().map(parse_arg).collect::<Result<_, _>>()?),
        Json::Object(m) => match (m.get("dtype"), m.get("float")) {
            (Some(Json::String(d)), _) => Arg::Dtype(parse_dtype(d)?),
            (_, Some(_)) => Arg::Float(json_float(v)?),
            _ => return Err(ImportError::Malformed(format!("bad argument {v}"))),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(nodes: &str) -> TraceEvents {
        let text = format!(
            r#"{{"params": [{{"name": "x", "kind": "array", "array": "A"}}],
                "output_kind": "array",
                "inputs": [["A", [4, 8], "float32"]],
                "outputs": [["C", [4, 8], "float32"]],
                "constants": [{{"name": "E", "shape": [], "dtype": "float32", "scalar": 0.5}}],
                "nodes": {nodes}}}"#
        );
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn imports_nodes_constants_and_signature() {
        let t = events(
            r#"[{"op": "Broadcast", "args": [[4, 8]], "inputs": [["E", [], "float32"]],
                 "outputs": [["B", [4, 8], "float32"]]},
                {"op": "Multiply", "args": [], "inputs": [["A", [4, 8], "float32"], ["B", [4, 8], "float32"]],
                 "outputs": [["C", [4, 8], "float32"]]}]"#,
        );
        let p = import_trace(&t).unwrap();
        assert_eq!(p.inputs, vec![0]);
        assert_eq!(p.nodes.len(), 2);
        assert_eq!(p.nodes[0].args, vec![Arg::List(vec![Arg::Int(Dim::constant(4)), Arg::Int(Dim::constant(8))])]);
        assert_eq!(p.outputs, vec![3]);
        assert_eq!(p.signature.params, vec![Param::Array { name: "x".into(), input: 0, keyword: false }]);
        assert!(matches!(p.constants[0].data, ConstData::Scalar { expr: ScalarExpr::Lit { v } } if v == 0.5));
    }

    #[test]
    fn unknown_primitive_is_named() {
        let t = events(
            r#"[{"op": "FancyNewOp", "args": [], "inputs": [["A", [4, 8], "float32"]],
                 "outputs": [["C", [4, 8], "float32"]]}]"#,
        );
        assert_eq!(import_trace(&t), Err(ImportError::Unsupported("FancyNewOp".into())));
    }

    #[test]
    fn slice_bounds_are_read_as_python_reads_them() {
        // x[:-1], x[::-1] (stop -9 on 8), x[5:1:-1], x[7:-1:-1] (empty), x[:20]
        let cases = [
            ([0, -1, 1], [0, 7, 1]),
            ([7, -9, -1], [7, -1, -1]),
            ([5, 1, -1], [5, 1, -1]),
            ([7, -1, -1], [7, 7, -1]),
            ([0, 20, 1], [0, 8, 1]),
            // x[-10::-1] (start -10 + 8 recorded, stop -9), x[-10:] (start -2 recorded)
            ([-2, -9, -1], [-1, -1, -1]),
            ([-2, 8, 1], [0, 8, 1]),
        ];
        for (given, read) in cases {
            let t = events(&format!(
                r#"[{{"op": "Slice", "args": [[0, {}], [4, {}], [1, {}]], "inputs": [["A", [4, 8], "float32"]],
                     "outputs": [["C", [4, 8], "float32"]]}}]"#,
                given[0], given[1], given[2]
            ));
            let p = import_trace(&t).unwrap();
            let ints: Vec<i64> = p.nodes[0].args.iter().map(|a| a.const_ints().unwrap()[1]).collect();
            assert_eq!(ints, read, "{given:?}");
        }
    }

    #[test]
    fn use_before_definition_is_malformed() {
        let t = events(
            r#"[{"op": "Exp", "args": [], "inputs": [["Z", [4, 8], "float32"]],
                 "outputs": [["C", [4, 8], "float32"]]}]"#,
        );
        assert!(matches!(import_trace(&t), Err(ImportError::Malformed(_))));
    }
}
