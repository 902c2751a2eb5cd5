//! The kernel body both emitters share: CUDA and Metal differ only in the words a
//! [`Dialect`] supplies (thread indices, vector loads, math names, barriers).
//!
//! Template parameters the body expects (the launcher passes them):
//! `T<i>` / `O<j>` the input and output element types, `N` the row length,
//! `VEC` the elements per vector access; for rows `TPR` (threads per row) and
//! `ITEMS` (vector accesses per thread); for elementwise `UNROLL`. The number of rows
//! is read from the first full-size input's shape, so one compiled kernel serves
//! every size with the same row length.

use crate::ir::{Binary, Form, Kernel, Layout, Level, Op, Reduce, Unary};
use std::fmt::Write;
use superopt_ir::Dtype;

pub trait Dialect {
    /// This thread's index within its row (rows) or block (elementwise).
    fn lane(&self) -> &'static str;
    /// The row this thread works on.
    fn row(&self) -> &'static str;
    /// The first pack this thread handles (elementwise): a pack index, not an element index.
    fn first_pack(&self) -> &'static str;
    /// Threads per block along x (elementwise).
    fn block_threads(&self) -> &'static str;
    /// A statement loading `VEC` elements of `ptr[at..]` into `dst[off..]` as floats.
    fn load(&self, ty: &str, ptr: &str, at: &str, dst: &str, off: &str) -> String;
    /// A statement storing `VEC` floats `src[off..]` to `ptr[at..]` as `ty`.
    fn store(&self, ty: &str, ptr: &str, at: &str, src: &str, off: &str) -> String;
    fn unary(&self, u: Unary, a: &str) -> String;
    fn pow(&self, a: &str, b: &str) -> String;
    fn cast(&self, d: Dtype, a: &str) -> String;
    fn scalar_load(&self, ptr: &str, at: &str) -> String;
    fn scalar_store(&self, ty: &str, ptr: &str, at: &str, v: &str) -> String;
    fn infinity(&self) -> &'static str;
    fn nan(&self) -> &'static str;
    /// Declares the scratch a row reduction needs.
    fn scratch(&self, name: &str) -> String;
    /// The row-wide reduction of `acc` (every thread of the row gets the result).
    fn reduce(&self, r: Reduce, acc: &str, scratch: &str) -> String;
}

/// A float32 literal.
pub fn literal(d: &dyn Dialect, v: f64) -> String {
    let f = v as f32;
    if f.is_nan() {
        d.nan().into()
    } else if f.is_infinite() {
        if f > 0.0 {
            d.infinity().into()
        } else {
            format!("(-{})", d.infinity())
        }
    } else {
        format!("{f:?}f")
    }
}

pub(crate) fn binary(d: &dyn Dialect, b: Binary, x: &str, y: &str) -> String {
    let cmp = |op: &str| format!("({x} {op} {y} ? 1.0f : 0.0f)");
    match b {
        Binary::Add => format!("{x} + {y}"),
        Binary::Sub => format!("{x} - {y}"),
        Binary::Mul => format!("{x} * {y}"),
        Binary::Div => format!("{x} / {y}"),
        Binary::Max => format!("so_max({x}, {y})"),
        Binary::Min => format!("so_min({x}, {y})"),
        Binary::Pow => d.pow(x, y),
        Binary::Gt => cmp(">"),
        Binary::Ge => cmp(">="),
        Binary::Lt => cmp("<"),
        Binary::Le => cmp("<="),
        Binary::Eq => cmp("=="),
        Binary::Ne => cmp("!="),
    }
}

/// Each value's level, and which operands are read where they are used, a pack at a
/// time, rather than kept in registers (`lazy[v]` names the input).
struct Vals {
    level: Vec<Level>,
    lazy: Vec<Option<usize>>,
}

/// The body of `k` in dialect `d`.
pub fn body(k: &Kernel, d: &dyn Dialect) -> String {
    let level = k.levels();
    // Rows kernels read per-column operands (weights, biases) where they are used: they
    // are small and cached, and holding them would cost a register per element. Not
    // where a reduction or a store reads them directly.
    let direct: Vec<usize> = k
        .insts
        .iter()
        .filter(|i| matches!(i.op, Op::Reduce(_)))
        .flat_map(|i| i.args.iter().copied())
        .chain(k.outputs.iter().map(|o| o.value))
        .collect();
    let lazy = k
        .insts
        .iter()
        .enumerate()
        .map(|(v, inst)| match inst.op {
            Op::Input(i) if k.form == Form::Rows && k.inputs[i].layout == Layout::Col && !direct.contains(&v) => {
                Some(i)
            }
            _ => None,
        })
        .collect();
    let vals = Vals { level, lazy };
    let mut s = String::new();
    let what = match k.form {
        Form::Rows => "TPR threads per row; each holds ITEMS packs of VEC elements of its row in registers",
        Form::Elementwise => "each thread handles UNROLL packs of VEC elements",
    };
    writeln!(s, "  // {}: {what}.", k.name).unwrap();
    match k.form {
        Form::Rows => rows(k, d, &vals, &mut s),
        Form::Elementwise => elementwise(k, d, &vals, &mut s),
    }
    s
}

/// The value `v` at element `e` (or the row's value).
fn at(vals: &Vals, v: usize, e: &str) -> String {
    if vals.lazy[v].is_some() {
        return format!("p{v}[j]");
    }
    match vals.level[v] {
        Level::Elem => format!("v{v}[{e}]"),
        Level::Row => format!("v{v}"),
    }
}

/// Right-hand side of a computing instruction (not a load or reduction), at element `e`.
fn compute(k: &Kernel, d: &dyn Dialect, vals: &Vals, v: usize, e: &str) -> String {
    let inst = &k.insts[v];
    let a = |i: usize| at(vals, inst.args[i], e);
    match inst.op {
        Op::Const(c) => literal(d, c),
        Op::Len => "float(N)".into(),
        Op::Unary(u) => d.unary(u, &a(0)),
        Op::Binary(b) => binary(d, b, &a(0), &a(1)),
        Op::Select => format!("({} != 0.0f ? {} : {})", a(0), a(1), a(2)),
        Op::Cast(t) => d.cast(t, &a(0)),
        Op::Input(_) | Op::Reduce(_) => unreachable!("loads and reductions are emitted apart"),
    }
}

/// Computes value `v` over the thread's `m` elements (or once, for a row value).
fn elem_or_row(k: &Kernel, d: &dyn Dialect, vals: &Vals, v: usize, m: &str, s: &mut String) {
    let lazy: Vec<usize> = k.insts[v].args.iter().copied().filter(|a| vals.lazy[*a].is_some()).collect();
    match vals.level[v] {
        Level::Row => writeln!(s, "  const float v{v} = {};", compute(k, d, vals, v, "e")).unwrap(),
        // Division by a row's value: one reciprocal per row, then products (1.5 ulp, not 0.5).
        Level::Elem if lazy.is_empty() && row_divisor(k, vals, v).is_some() => {
            let (x, y) = (k.insts[v].args[0], row_divisor(k, vals, v).unwrap());
            writeln!(s, "  const float r{v} = 1.0f / v{y};\n  float v{v}[{m}];").unwrap();
            writeln!(s, "  for (int e = 0; e < {m}; ++e) v{v}[e] = {} * r{v};", at(vals, x, "e")).unwrap();
        }
        Level::Elem if lazy.is_empty() => {
            writeln!(s, "  float v{v}[{m}];").unwrap();
            writeln!(s, "  for (int e = 0; e < {m}; ++e) v{v}[e] = {};", compute(k, d, vals, v, "e")).unwrap();
        }
        Level::Elem => {
            // Per pack: read the per-column operands' pack, then compute its elements.
            writeln!(s, "  float v{v}[{m}];\n  for (int i = 0; i < ITEMS; ++i) {{").unwrap();
            for a in lazy {
                let name = &k.inputs[vals.lazy[a].unwrap()].name;
                let ty = format!("T{}", vals.lazy[a].unwrap());
                writeln!(s, "    float p{a}[VEC];  // {name}").unwrap();
                writeln!(s, "    if ({IN_ROW}) {{\n      {}", d.load(&ty, name, COL, &format!("p{a}"), "0")).unwrap();
                writeln!(s, "    }} else {{\n      for (int j = 0; j < VEC; ++j) p{a}[j] = 0.0f;\n    }}").unwrap();
            }
            writeln!(s, "    for (int j = 0; j < VEC; ++j) {{\n      const int e = i * VEC + j;").unwrap();
            writeln!(s, "      v{v}[e] = {};\n    }}\n  }}", compute(k, d, vals, v, "e")).unwrap();
        }
    }
}

/// The divisor of `v` when `v` divides elements by a value held once per row.
fn row_divisor(k: &Kernel, vals: &Vals, v: usize) -> Option<usize> {
    let inst = &k.insts[v];
    let y = *inst.args.get(1)?;
    (inst.op == Op::Binary(Binary::Div)
        && vals.level[y] == Level::Row
        && vals.lazy[y].is_none()
        && vals.level[inst.args[0]] == Level::Elem)
        .then_some(y)
}

/// Declares `rows`: the product of the leading dimensions of the first full-size input.
fn count_rows(k: &Kernel, s: &mut String) {
    let full = k.inputs.iter().find(|o| o.layout == Layout::Full).map_or("in0", |o| o.name.as_str());
    writeln!(s, "  int rows = 1;\n  for (int d = 0; d < {full}_ndim - 1; ++d) rows *= {full}_shape[d];").unwrap();
}

/// The first column of a thread's pack `i`, and the test that it lies in the row
/// (`EVEN`: every pack does, known when the kernel is compiled).
const COL: &str = "(i * TPR + lane) * VEC";
const IN_ROW: &str = "EVEN || (i * TPR + lane) * VEC < N";

fn rows(k: &Kernel, d: &dyn Dialect, vals: &Vals, s: &mut String) {
    writeln!(s, "  constexpr int M = ITEMS * VEC;").unwrap();
    writeln!(s, "  constexpr bool EVEN = N % (TPR * VEC) == 0;  // every pack in the row").unwrap();
    writeln!(s, "  const int lane = {};", d.lane()).unwrap();
    writeln!(s, "  const int row = {};", d.row()).unwrap();
    count_rows(k, s);
    writeln!(s, "  if (row >= rows) return;").unwrap();
    writeln!(s, "  const size_t base = size_t(row) * N;").unwrap();
    writeln!(s, "  // Pack i of this thread starts at column (i * TPR + lane) * VEC.").unwrap();
    for (v, inst) in k.insts.iter().enumerate() {
        match inst.op {
            Op::Input(i) => {
                let (name, ty) = (&k.inputs[i].name, format!("T{i}"));
                match k.inputs[i].layout {
                    Layout::Col if vals.lazy[v].is_some() => writeln!(s, "  // {name}: read where used").unwrap(),
                    Layout::Full | Layout::Col => {
                        let off = if k.inputs[i].layout == Layout::Full { "base + " } else { "" };
                        writeln!(s, "  float v{v}[M];  // {name}").unwrap();
                        writeln!(s, "  for (int i = 0; i < ITEMS; ++i) {{").unwrap();
                        writeln!(s, "    if ({IN_ROW}) {{").unwrap();
                        writeln!(s, "      {}", d.load(&ty, name, &format!("{off}{COL}"), &format!("v{v}"), "i * VEC"))
                            .unwrap();
                        writeln!(s, "    }} else {{").unwrap();
                        writeln!(s, "      for (int j = 0; j < VEC; ++j) v{v}[i * VEC + j] = 0.0f;").unwrap();
                        writeln!(s, "    }}\n  }}").unwrap();
                    }
                    Layout::Row => {
                        writeln!(s, "  const float v{v} = {};  // {name}", d.scalar_load(name, "row")).unwrap()
                    }
                    Layout::Scalar => {
                        writeln!(s, "  const float v{v} = {};  // {name}", d.scalar_load(name, "0")).unwrap()
                    }
                }
            }
            Op::Reduce(r) => {
                let (init, step) = match r {
                    Reduce::Sum => ("0.0f".to_string(), format!("acc += v{}[i * VEC + j]", inst.args[0])),
                    Reduce::Max => {
                        (format!("(-{})", d.infinity()), format!("acc = so_max(acc, v{}[i * VEC + j])", inst.args[0]))
                    }
                    Reduce::Min => {
                        (d.infinity().to_string(), format!("acc = so_min(acc, v{}[i * VEC + j])", inst.args[0]))
                    }
                };
                writeln!(s, "  {}", d.scratch(&format!("red{v}"))).unwrap();
                writeln!(s, "  float v{v};\n  {{").unwrap();
                writeln!(s, "    float acc = {init};").unwrap();
                writeln!(s, "    for (int i = 0; i < ITEMS; ++i) {{").unwrap();
                writeln!(s, "      if ({IN_ROW}) {{").unwrap();
                writeln!(s, "        for (int j = 0; j < VEC; ++j) {step};").unwrap();
                writeln!(s, "      }}\n    }}").unwrap();
                writeln!(s, "    v{v} = {};", d.reduce(r, "acc", &format!("red{v}"))).unwrap();
                writeln!(s, "  }}").unwrap();
            }
            _ => elem_or_row(k, d, vals, v, "M", s),
        }
    }
    for (j, o) in k.outputs.iter().enumerate() {
        let ty = format!("O{j}");
        match o.layout {
            Layout::Row => {
                writeln!(s, "  if (lane == 0) {}", d.scalar_store(&ty, &o.name, "row", &format!("v{}", o.value)))
                    .unwrap()
            }
            _ => {
                let src = broadcast_elem(vals, o.value, "M", s);
                writeln!(s, "  for (int i = 0; i < ITEMS; ++i) {{").unwrap();
                writeln!(s, "    if ({IN_ROW}) {{").unwrap();
                writeln!(s, "      {}", d.store(&ty, &o.name, &format!("base + {COL}"), &src, "i * VEC")).unwrap();
                writeln!(s, "    }}\n  }}").unwrap();
            }
        }
    }
}

/// The name of an element array holding value `v` (a row value is spread first).
fn broadcast_elem(vals: &Vals, v: usize, m: &str, s: &mut String) -> String {
    match vals.level[v] {
        Level::Elem => format!("v{v}"),
        Level::Row => {
            writeln!(s, "  float b{v}[{m}];\n  for (int e = 0; e < {m}; ++e) b{v}[e] = v{v};").unwrap();
            format!("b{v}")
        }
    }
}

fn elementwise(k: &Kernel, d: &dyn Dialect, vals: &Vals, s: &mut String) {
    count_rows(k, s);
    writeln!(s, "  const size_t total = size_t(rows) * N;").unwrap();
    writeln!(s, "  const size_t first = {};", d.first_pack()).unwrap();
    writeln!(s, "  const size_t stride = {};", d.block_threads()).unwrap();
    writeln!(s, "  for (int u = 0; u < UNROLL; ++u) {{").unwrap();
    let mut b = String::new();
    writeln!(b, "  const size_t at = (first + u * stride) * VEC;  // first element of this pack").unwrap();
    writeln!(b, "  if (at >= total) break;").unwrap();
    for (v, inst) in k.insts.iter().enumerate() {
        match inst.op {
            Op::Input(i) => {
                let (name, ty) = (&k.inputs[i].name, format!("T{i}"));
                let pack = |b: &mut String, index: &str| {
                    writeln!(b, "  float v{v}[VEC];  // {name}\n  {}", d.load(&ty, name, index, &format!("v{v}"), "0"))
                        .unwrap()
                };
                match k.inputs[i].layout {
                    Layout::Full => pack(&mut b, "at"),
                    Layout::Col => pack(&mut b, "at % N"),
                    Layout::Row => {
                        writeln!(b, "  const float v{v} = {};  // {name}", d.scalar_load(name, "at / N")).unwrap()
                    }
                    Layout::Scalar => {
                        writeln!(b, "  const float v{v} = {};  // {name}", d.scalar_load(name, "0")).unwrap()
                    }
                }
            }
            _ => elem_or_row(k, d, vals, v, "VEC", &mut b),
        }
    }
    for (j, o) in k.outputs.iter().enumerate() {
        let src = broadcast_elem(vals, o.value, "VEC", &mut b);
        writeln!(b, "  {}", d.store(&format!("O{j}"), &o.name, "at", &src, "0")).unwrap();
    }
    for line in b.lines() {
        writeln!(s, "  {line}").unwrap();
    }
    writeln!(s, "  }}").unwrap();
}

#[cfg(test)]
mod tests {
    use crate::ir::{Binary, Builder, Form, Layout, Reduce};
    use superopt_ir::Dtype;

    #[test]
    fn a_per_column_operand_a_reduction_reads_is_kept_in_registers() {
        // out = x * sum(w): the reduction reads w itself, so w cannot be read lazily.
        let mut b = Builder::new("k", Form::Rows);
        let x = b.input("x", Layout::Full);
        let w = b.input("w", Layout::Col);
        let s = b.reduce(Reduce::Sum, w);
        let y = b.binary(Binary::Mul, x, s);
        b.output("out", Layout::Full, Dtype::Float32, y);
        let src = crate::cuda::source(&b.finish().unwrap());
        assert!(
            src.contains("float v1[M];  // w")
                && src.contains("reinterpret_cast<const SoPack<T1, VEC>*>(w + (i * TPR + lane) * VEC)"),
            "{src}"
        );
        assert!(!src.contains("w: read where used"), "{src}");
    }

    #[test]
    fn a_per_column_operand_used_in_arithmetic_is_read_where_used() {
        let k = crate::library::rms_norm_kernel(Dtype::Float32).unwrap();
        let src = crate::cuda::source(&k);
        assert!(src.contains("w: read where used") && src.contains("float p1[VEC];  // w"), "{src}");
    }

    #[test]
    fn division_by_a_row_value_is_one_reciprocal_per_row() {
        let src = crate::cuda::source(&crate::library::softmax_kernel(Dtype::Float32).unwrap());
        assert!(src.contains("const float r5 = 1.0f / v4;") && src.contains("v5[e] = v3[e] * r5;"), "{src}");
        // Elements divided by elements stay divisions.
        let mut b = Builder::new("k", Form::Elementwise);
        let x = b.input("x", Layout::Full);
        let y = b.input("y", Layout::Full);
        let q = b.binary(Binary::Div, x, y);
        b.output("out", Layout::Full, Dtype::Float32, q);
        let src = crate::cuda::source(&b.finish().unwrap());
        assert!(src.contains("v2[e] = v0[e] / v1[e];") && !src.contains("1.0f /"), "{src}");
    }

    #[test]
    fn exp_is_shortened_only_where_every_output_is_16_bit() {
        let f32 = crate::cuda::source(&crate::library::softmax_kernel(Dtype::Float32).unwrap());
        let bf16 = crate::cuda::source(&crate::library::softmax_kernel(Dtype::Bfloat16).unwrap());
        assert!(f32.contains("expf(") && !f32.contains("exp2f("), "{f32}");
        assert!(bf16.contains("exp2f(1.44269504f * (") && !bf16.contains("expf("), "{bf16}");
    }
}
