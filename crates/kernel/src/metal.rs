//! Metal source for `mx.fast.metal_kernel`, from the same kernel IR. MLX writes the
//! signature and the template parameters; threads are indexed through the attributes
//! MLX adds when the body names them.

use crate::c::{self, Dialect};
use crate::ir::{Kernel, Reduce, Unary};
use superopt_ir::Dtype;

/// Helpers every kernel's body may call.
pub const HEADER: &str = r#"
// superopt: NaN-propagating max/min (as MLX's), erf, row reductions.
inline float so_max(float a, float b) { return (isnan(a) || a > b) ? a : b; }
inline float so_min(float a, float b) { return (isnan(a) || a < b) ? a : b; }
inline float so_sigmoid(float a) { return 1.0f / (1.0f + metal::exp(-a)); }

// erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7).
inline float so_erf(float x) {
  const float t = 1.0f / (1.0f + 0.3275911f * metal::abs(x));
  const float poly = ((((1.061405429f * t - 1.453152027f) * t) + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f;
  const float y = 1.0f - poly * t * metal::exp(-x * x);
  return metal::copysign(y, x);
}

struct SoSum { float operator()(float a, float b) const { return a + b; } };
struct SoMax { float operator()(float a, float b) const { return so_max(a, b); } };
struct SoMin { float operator()(float a, float b) const { return so_min(a, b); } };

// Reduces v over the TPR threads of a row; every thread gets the result.
template <int TPR, typename F>
inline float so_row_reduce(float v, threadgroup float* scratch, uint lane, F op, float identity) {
  for (ushort o = 16; o > 0; o >>= 1) v = op(v, simd_shuffle_xor(v, o));
  if (TPR > 32) {
    if (lane % 32 == 0) scratch[lane / 32] = v;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    v = lane % 32 < TPR / 32 ? scratch[lane % 32] : identity;
    for (ushort o = 16; o > 0; o >>= 1) v = op(v, simd_shuffle_xor(v, o));
  }
  return v;
}
"#;

pub struct Metal;

impl Dialect for Metal {
    fn lane(&self) -> &'static str {
        "thread_position_in_threadgroup.x"
    }
    fn row(&self) -> &'static str {
        "thread_position_in_grid.y"
    }
    fn first_pack(&self) -> &'static str {
        "size_t(threadgroup_position_in_grid.x) * threads_per_threadgroup.x * UNROLL + thread_position_in_threadgroup.x"
    }
    fn block_threads(&self) -> &'static str {
        "threads_per_threadgroup.x"
    }
    fn load(&self, _ty: &str, ptr: &str, at: &str, dst: &str, off: &str) -> String {
        format!("for (int j = 0; j < VEC; ++j) {dst}[{off} + j] = float({ptr}[{at} + j]);")
    }
    fn store(&self, ty: &str, ptr: &str, at: &str, src: &str, off: &str) -> String {
        format!("for (int j = 0; j < VEC; ++j) {ptr}[{at} + j] = {ty}({src}[{off} + j]);")
    }
    fn unary(&self, u: Unary, a: &str) -> String {
        let f = match u {
            Unary::Neg => return format!("-{a}"),
            Unary::Square => return format!("{a} * {a}"),
            Unary::Sigmoid => "so_sigmoid",
            Unary::Erf => "so_erf",
            Unary::Exp => "metal::exp",
            Unary::Log => "metal::log",
            Unary::Sqrt => "metal::sqrt",
            Unary::Rsqrt => "metal::rsqrt",
            Unary::Abs => "metal::abs",
            Unary::Tanh => "metal::tanh",
            Unary::Sin => "metal::sin",
            Unary::Cos => "metal::cos",
        };
        format!("{f}({a})")
    }
    fn pow(&self, a: &str, b: &str) -> String {
        format!("metal::pow({a}, {b})")
    }
    fn cast(&self, d: Dtype, a: &str) -> String {
        match d {
            Dtype::Bfloat16 => format!("float(bfloat({a}))"),
            Dtype::Float16 => format!("float(half({a}))"),
            _ => a.to_string(),
        }
    }
    fn scalar_load(&self, ptr: &str, at: &str) -> String {
        format!("float({ptr}[{at}])")
    }
    fn scalar_store(&self, ty: &str, ptr: &str, at: &str, v: &str) -> String {
        format!("{ptr}[{at}] = {ty}({v});")
    }
    fn infinity(&self) -> &'static str {
        "INFINITY"
    }
    fn nan(&self) -> &'static str {
        "NAN"
    }
    fn scratch(&self, name: &str) -> String {
        format!("threadgroup float {name}[32];")
    }
    fn reduce(&self, r: Reduce, acc: &str, scratch: &str) -> String {
        let (f, id) = match r {
            Reduce::Sum => ("SoSum", "0.0f"),
            Reduce::Max => ("SoMax", "-INFINITY"),
            Reduce::Min => ("SoMin", "INFINITY"),
        };
        format!("so_row_reduce<TPR>({acc}, {scratch}, {}, {f}(), {id})", self.lane())
    }
}

/// The kernel's body for `mx.fast.metal_kernel(source=...)`; pair it with [`HEADER`].
pub fn source(k: &Kernel) -> String {
    c::body(k, &Metal)
}
