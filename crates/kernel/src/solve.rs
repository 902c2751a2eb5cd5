//! Unit lower-triangular solves as generated kernels: for each `N x N` matrix over the
//! last two axes, the inverse `(I + sL)^-1` of its strictly lower part `L` (`s` is
//! [`Sign`]), written where the output is strictly lower and [`Rest`] elsewhere. Chunked
//! linear attention (the WY form of the gated delta rule) solves one per (batch, head,
//! chunk), written as forward substitution: a loop of in-place row updates, a chain of
//! stacked rows, rows accumulated by products ([`lower`] finds them by what they compute).
//!
//! One block (threadgroup) per matrix, one thread per column: the matrix's strictly lower
//! part is loaded once into shared memory, each thread keeps its column of the inverse in
//! registers (`N` known at compile time; the CUDA loops are unrolled, the Metal ones left to
//! its compiler) and walks the rows in order, so every thread reads the same matrix element
//! at once. The sum for row `i` runs over
//! every `k < i` (zeros included), as the written substitutions do.

use serde::{Deserialize, Serialize};
use superopt_ir::Dtype;

/// Which unit lower-triangular matrix is inverted: `I + L` or `I - L`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sign {
    Plus,
    Minus,
}

/// What the output holds on and above the diagonal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rest {
    /// The inverse's own: ones on the diagonal, zeros above.
    Identity,
    /// Zeros (the inverse minus the identity).
    Zero,
    /// The input's entries, as an in-place substitution leaves them.
    Input,
}

/// A solve kernel (see the module doc).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Solve {
    pub name: String,
    /// The matrices' size.
    pub n: i64,
    /// The dtype of the input and the output.
    pub dtype: Dtype,
    pub sign: Sign,
    pub rest: Rest,
}

/// The largest matrix one block holds (its strictly lower part in 16 KB of shared memory).
pub const MAX_N: i64 = 64;

impl Solve {
    /// Checks what the emitters assume: at most [`MAX_N`] columns (one thread each), a
    /// float dtype the kernels compute in.
    pub fn new(name: &str, n: i64, dtype: Dtype, (sign, rest): (Sign, Rest)) -> Option<Solve> {
        let fits = (2..=MAX_N).contains(&n) && crate::ir::computable(dtype);
        fits.then(|| Solve { name: name.into(), n, dtype, sign, rest })
    }

    /// The factor of `L` in the recurrence `t[i][j] = [i == j] + sum_k a[i][k] t[k][j]`,
    /// `a = -sL`.
    fn factor(&self) -> &'static str {
        match self.sign {
            Sign::Plus => "-",
            Sign::Minus => "",
        }
    }
}

/// One line on what `s` computes.
pub fn describe(s: &Solve) -> String {
    let m = match s.sign {
        Sign::Plus => "I + L",
        Sign::Minus => "I - L",
    };
    let rest = match s.rest {
        Rest::Identity => "",
        Rest::Zero => ", zeros on and above the diagonal",
        Rest::Input => ", the input's entries on and above the diagonal",
    };
    format!("({m})^-1 of the strictly lower part L of {n} x {n} matrices{rest}, {}", s.dtype.name(), n = s.n)
}

/// The output on and above the diagonal at row `i`, column `j` (C-like, both languages).
fn rest_value(s: &Solve) -> &'static str {
    match s.rest {
        Rest::Identity => "(i == j ? 1.0f : 0.0f)",
        Rest::Zero => "0.0f",
        Rest::Input => "so_to_float(x[base + i * N + j])",
    }
}

/// The body for `mx.fast.cuda_kernel`, with [`crate::cuda::HEADER`] and the template
/// constants `T` (input), `O` (output) and `N`; blocks of `N` threads, one per matrix.
pub fn cuda_source(s: &Solve) -> String {
    let body = r#"  __shared__ float a[N * N];  // a = -sL (s = 1 for I + L): strictly lower, zeros elsewhere
  const int j = threadIdx.x;  // this thread's column
  const size_t base = size_t(blockIdx.x) * N * N;
  for (int e = j; e < N * N; e += N) {
    const int r = e / N, c = e - r * N;
    a[e] = r > c ? FACTORso_to_float(x[base + e]) : 0.0f;
  }
  __syncthreads();
  float t[N];  // column j of the inverse, in registers
#pragma unroll
  for (int i = 0; i < N; ++i) {
    float acc = 0.0f;
#pragma unroll
    for (int k = 0; k < i; ++k) acc += a[i * N + k] * t[k];
    t[i] = i == j ? 1.0f : (i > j ? acc : 0.0f);
  }
#pragma unroll
  for (int i = 0; i < N; ++i) out[base + i * N + j] = so_from_float<O>(i > j ? t[i] : REST);
"#;
    format!("  // {}: {}\n{}", s.name, describe(s), body.replace("FACTOR", s.factor()).replace("REST", rest_value(s)))
}

/// The body for `mx.fast.metal_kernel`, with [`crate::metal::HEADER`]: the walk of
/// [`cuda_source`], the matrix in threadgroup memory.
pub fn metal_source(s: &Solve) -> String {
    let body = r#"  threadgroup float a[N * N];  // a = -sL (s = 1 for I + L): strictly lower, zeros elsewhere
  const int j = thread_position_in_threadgroup.x;  // this thread's column
  const size_t base = size_t(threadgroup_position_in_grid.x) * N * N;
  for (int e = j; e < N * N; e += N) {
    const int r = e / N, c = e - r * N;
    a[e] = r > c ? FACTORfloat(x[base + e]) : 0.0f;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  float t[N];  // column j of the inverse
  for (int i = 0; i < N; ++i) {
    float acc = 0.0f;
    for (int k = 0; k < i; ++k) acc += a[i * N + k] * t[k];
    t[i] = i == j ? 1.0f : (i > j ? acc : 0.0f);
  }
  for (int i = 0; i < N; ++i) out[base + i * N + j] = O(i > j ? t[i] : REST);
"#;
    let rest = rest_value(s).replace("so_to_float", "float");
    format!("  // {}: {}\n{}", s.name, describe(s), body.replace("FACTOR", s.factor()).replace("REST", &rest))
}

/// What MLX's CUDA backend wraps around [`cuda_source`], for compiling it without MLX
/// (see [`crate::cuda::mlx_module`]).
pub fn mlx_function(name: &str, s: &Solve) -> String {
    let c = crate::cuda::ctype(s.dtype);
    format!(
        "__global__ void {name}(\n    const {c}* x,\n    {c}* out) {{\n  using T = {c};\n  using O = {c};\n  \
         constexpr int N = {};\n{}\n}}\n",
        s.n,
        cuda_source(s)
    )
}

/// Python defining `_k{index}(x)` for `target`: one block of `N` threads per matrix.
/// Needs the module's `_KERNEL_HEADER` ([`crate::launch::preamble`]).
pub fn launcher(s: &Solve, index: usize, target: crate::Target) -> String {
    let (make, source) = match target {
        crate::Target::Cuda => ("mx.fast.cuda_kernel", cuda_source(s)),
        crate::Target::Metal => ("mx.fast.metal_kernel", metal_source(s)),
        crate::Target::Mlx => return mlx_launcher(s, index),
    };
    format!(
        r#"_K{index}_SOURCE = r"""
{source}"""
_K{index} = None  # made at the first call: only a GPU backend can


def _k{index}(x):
    """{name}: {what}."""
    global _K{index}
    if _K{index} is None:
        _K{index} = {make}(
            name="superopt_{name}_{digest}",
            input_names=["x"],
            output_names=["out"],
            source=_K{index}_SOURCE,
            header=_KERNEL_HEADER,
        )
    matrices = x.size // ({n} * {n})
    (out,) = _K{index}(
        inputs=[x],
        template=[("T", x.dtype), ("O", x.dtype), ("N", {n})],
        grid=(matrices * {n}, 1, 1),
        threadgroup=({n}, 1, 1),
        output_shapes=[x.shape],
        output_dtypes=[x.dtype],
    )
    return out


"#,
        name = s.name,
        what = describe(s),
        digest = crate::quantized::digest(&source),
        n = s.n,
    )
}

/// The kernel's meaning in plain MLX, in float32: MLX's triangular inverse of `I - a`
/// (`a = -sL`, on the CPU), NaN where the kernel's sums meet a non-finite entry. The
/// kernel sums row `i` over every `k < i`, zeros included, so a row of `a` holding NaN or
/// an infinity makes its row of the inverse (left of the diagonal) non-finite, and every
/// row below it from that column on: entry `(i, j)` is reached when a row in `(j, i]` is.
/// (`tri_inv` alone skips the zeros and leaves those finite; doubling, `(I + a)(I + a^2)..`,
/// makes NaN of the powers' overflows times zeros.) A function `_k{index}(x)`.
pub fn mlx_launcher(s: &Solve, index: usize) -> String {
    let rest = match s.rest {
        Rest::Identity => "mx.eye(n)",
        Rest::Zero => "0.0",
        Rest::Input => "x32",
    };
    format!(
        r#"def _k{index}(x):
    """{name}: its meaning in plain MLX (MLX's triangular inverse, NaN where the substitution meets one)."""
    n = x.shape[-1]
    x32 = x.astype(mx.float32)
    strict = mx.tril(mx.ones((n, n), dtype=mx.bool_), k=-1)
    a = mx.where(strict, {factor}x32, 0.0)
    t = mx.linalg.tri_inv(mx.eye(n) - a, upper=False, stream=mx.cpu)
    bad = mx.cumsum(mx.any(~mx.isfinite(a), axis=-1).astype(mx.int32), axis=-1)
    t = mx.where(bad[..., :, None] > bad[..., None, :], mx.nan, t)
    return mx.where(strict, t, {rest}).astype(x.dtype)


"#,
        name = s.name,
        factor = s.factor(),
    )
}

pub mod lower;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_float_matrices_one_block_holds_are_kernels() {
        let form = (Sign::Minus, Rest::Input);
        assert!(Solve::new("s", 64, Dtype::Float32, form).is_some());
        assert!(Solve::new("s", 16, Dtype::Bfloat16, form).is_some());
        assert!(Solve::new("s", 65, Dtype::Float32, form).is_none());
        assert!(Solve::new("s", 1, Dtype::Float32, form).is_none());
        assert!(Solve::new("s", 16, Dtype::Int32, form).is_none());
    }

    #[test]
    fn the_sign_and_the_rest_reach_every_form() {
        let s = Solve::new("s", 16, Dtype::Float32, (Sign::Plus, Rest::Identity)).unwrap();
        assert!(cuda_source(&s).contains("? -so_to_float(x[base + e])"));
        assert!(cuda_source(&s).contains("(i == j ? 1.0f : 0.0f)"));
        assert!(mlx_launcher(&s, 0).contains("a = mx.where(strict, -x32, 0.0)"));
        let m = Solve { sign: Sign::Minus, rest: Rest::Input, ..s };
        assert!(cuda_source(&m).contains("? so_to_float(x[base + e])"));
        assert!(metal_source(&m).contains("float(x[base + i * N + j])"));
        assert!(mlx_launcher(&m, 0).contains("mx.where(strict, t, x32)"));
    }
}
