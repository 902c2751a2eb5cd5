//! Text and Graphviz views of a program (`superopt trace --format text|dot`).

use crate::program::*;
use std::fmt::Write;

/// A Python float literal that parses back to exactly `f` (for the modules superopt emits).
pub fn py_float(f: f64) -> String {
    if f.is_nan() {
        "float('nan')".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "float('inf')".into()
        } else {
            "float('-inf')".into()
        }
    } else {
        format!("{f:?}")
    }
}

fn ty(v: &Value) -> String {
    let dims: Vec<String> = v.shape.iter().map(|d| d.to_string()).collect();
    format!("{}[{}]", v.dtype, dims.join(","))
}

fn arg_text(a: &Arg) -> String {
    match a {
        Arg::Int(d) => d.to_string(),
        Arg::Float(f) => format!("{f:?}"),
        Arg::Bool(b) => b.to_string(),
        Arg::Str(s) => format!("{s:?}"),
        Arg::Dtype(d) => d.to_string(),
        Arg::List(items) => format!("[{}]", items.iter().map(arg_text).collect::<Vec<_>>().join(", ")),
        Arg::None => "None".into(),
    }
}

fn const_text(c: &ConstData) -> String {
    match c {
        ConstData::Scalar { expr: ScalarExpr::Lit { v } } => format!("{v:?}"),
        ConstData::Scalar { expr: ScalarExpr::Recip { dim } } => format!("1 / ({dim})"),
        ConstData::Scalar { expr: ScalarExpr::Rsqrt { dim } } => format!("({dim}) ** -0.5"),
        ConstData::Scalar { expr: ScalarExpr::Of { dim } } => format!("float({dim})"),
        ConstData::Tensor { key } => format!("tensor {}", &key[..key.len().min(12)]),
    }
}

/// One line per input, constant and node: `%3 = Multiply(%0, %2) : float32[4,8]`.
pub fn text(p: &Program) -> String {
    let mut s = String::new();
    for (k, i) in p.inputs.iter().enumerate() {
        let name = p.signature.params.iter().find_map(|q| match q {
            Param::Array { name, input, .. } if *input == k => Some(name.as_str()),
            _ => None,
        });
        writeln!(s, "%{i} = input {} : {}", name.unwrap_or("?"), ty(p.value(*i))).unwrap();
    }
    for c in &p.constants {
        writeln!(s, "%{} = const {} : {}", c.value, const_text(&c.data), ty(p.value(c.value))).unwrap();
    }
    for n in &p.nodes {
        let outs: Vec<String> = n.outputs.iter().map(|o| format!("%{o}")).collect();
        let ins: Vec<String> = n.inputs.iter().map(|i| format!("%{i}")).collect();
        let args: Vec<String> = n.args.iter().map(arg_text).collect();
        let args = if args.is_empty() { String::new() } else { format!(" {{{}}}", args.join(", ")) };
        let tys: Vec<String> = n.outputs.iter().map(|o| ty(p.value(*o))).collect();
        writeln!(s, "{} = {}({}){} : {}", outs.join(", "), n.op, ins.join(", "), args, tys.join(", ")).unwrap();
    }
    let outs: Vec<String> = p.outputs.iter().map(|o| format!("%{o}")).collect();
    writeln!(s, "return {}", outs.join(", ")).unwrap();
    s
}

/// A Graphviz digraph: one box per node, edges labelled with shapes.
pub fn dot(p: &Program) -> String {
    let mut s = String::from("digraph program {\n  rankdir=TB;\n  node [shape=box, fontname=monospace];\n");
    let mut producer = vec![None; p.values.len()];
    for (k, i) in p.inputs.iter().enumerate() {
        writeln!(s, "  in{k} [label=\"input {k}\", shape=ellipse];").unwrap();
        producer[*i] = Some(format!("in{k}"));
    }
    for c in &p.constants {
        writeln!(s, "  c{} [label=\"{}\", shape=note];", c.value, const_text(&c.data).replace('"', "'")).unwrap();
        producer[c.value] = Some(format!("c{}", c.value));
    }
    for (k, n) in p.nodes.iter().enumerate() {
        writeln!(s, "  n{k} [label=\"{}\"];", n.op).unwrap();
        for i in &n.inputs {
            if let Some(src) = &producer[*i] {
                writeln!(s, "  {src} -> n{k} [label=\"{}\"];", ty(p.value(*i))).unwrap();
            }
        }
        for o in &n.outputs {
            producer[*o] = Some(format!("n{k}"));
        }
    }
    for (k, o) in p.outputs.iter().enumerate() {
        writeln!(s, "  out{k} [label=\"output {k}\", shape=ellipse];").unwrap();
        if let Some(src) = &producer[*o] {
            writeln!(s, "  {src} -> out{k} [label=\"{}\"];", ty(p.value(*o))).unwrap();
        }
    }
    s.push_str("}\n");
    s
}
